// Package httpload is a small HTTP client loop for the tests and the
// benchmark of --listen: workers make GET requests, each on a new
// connection, until stopped, and count how each one ended: served,
// refused (nothing listened), reset (the server died with the request in
// flight), or anything else.
package httpload

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load is a running client loop.
type Load struct {
	ok, refused, reset, other atomic.Int64
	mu                        sync.Mutex
	lastErr                   error
	stop                      chan struct{}
	wg                        sync.WaitGroup
}

// Counts is how the requests ended.
type Counts struct {
	OK      int64  `json:"ok"`
	Refused int64  `json:"refused"`
	Reset   int64  `json:"reset_in_flight"`
	Other   int64  `json:"other"`
	LastErr string `json:"last_other_error,omitempty"`
}

// Total is every request made.
func (c Counts) Total() int64 { return c.OK + c.Refused + c.Reset + c.Other }

func (c Counts) String() string {
	s := fmt.Sprintf("%d ok, %d refused, %d reset in flight, %d other", c.OK, c.Refused, c.Reset, c.Other)
	if c.LastErr != "" {
		s += " (last: " + c.LastErr + ")"
	}
	return s
}

// Start runs workers loops of GET url.
func Start(url string, workers int) *Load {
	ld := &Load{stop: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range workers {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			for {
				select {
				case <-ld.stop:
					return
				default:
				}
				ld.count(client.Get(url))
			}
		}()
	}
	return ld
}

func (ld *Load) count(resp *http.Response, err error) {
	switch {
	case err == nil && resp.StatusCode == http.StatusOK:
		resp.Body.Close()
		ld.ok.Add(1)
		return
	case errors.Is(err, syscall.ECONNREFUSED):
		ld.refused.Add(1)
		return
	case errors.Is(err, syscall.ECONNRESET) || err != nil && (strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "server closed")):
		ld.reset.Add(1)
		return
	case err == nil:
		resp.Body.Close()
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	ld.other.Add(1)
	ld.mu.Lock()
	ld.lastErr = err
	ld.mu.Unlock()
}

// End stops the workers, waits for them, and returns the counts.
func (ld *Load) End() Counts {
	close(ld.stop)
	ld.wg.Wait()
	c := Counts{OK: ld.ok.Load(), Refused: ld.refused.Load(), Reset: ld.reset.Load(), Other: ld.other.Load()}
	if ld.lastErr != nil {
		c.LastErr = ld.lastErr.Error()
	}
	return c
}
