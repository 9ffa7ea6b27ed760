package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Status is what `status --json` prints; the field names are a stable contract.
type Status struct {
	Name         string    `json:"name"`
	State        string    `json:"state"`
	PID          int       `json:"pid"`
	Restarts     int       `json:"restarts"`
	LastExit     *Exit     `json:"last_exit"`
	Health       string    `json:"health"`
	Since        time.Time `json:"since"`
	Plugins      []string  `json:"plugins"`
	Program      string    `json:"program"`
	Args         []string  `json:"args"`
	RespawnerPID int       `json:"respawner_pid"`
	Started      time.Time `json:"started,omitzero"` // start of the current run, when running
	NextRestart  time.Time `json:"next_restart,omitzero"`
	Reason       string    `json:"reason,omitempty"`
	LastProbe    string    `json:"last_probe,omitempty"` // result of the last health probe
}

// Exit is {"code": N} or {"signal": "SIGKILL"}.
type Exit struct {
	Code   *int   `json:"code,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// Reply is the answer to a request other than status.
type Reply struct {
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
}

// Request kinds.
const (
	ReqStatus = "status"
	ReqStop   = "stop"
)

// ParseRequest reads one request line. It accepts exactly the known words.
func ParseRequest(line string) (string, error) {
	line = strings.TrimSpace(line)
	switch line {
	case ReqStatus, ReqStop:
		return line, nil
	}
	if len(line) > 32 {
		line = line[:32] + "..."
	}
	return "", fmt.Errorf("unknown request %q", line)
}

// PeerAllowed checks with SO_PEERCRED that the peer on fd is root or runs
// under our uid.
func PeerAllowed(fd int) (uid uint32, ok bool) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, false
	}
	return cred.Uid, cred.Uid == 0 || int(cred.Uid) == unix.Geteuid()
}

// Listen creates NAME.sock (mode 0600) and returns a non-blocking listening
// socket for the event loop. Call it only while holding the instance Lock.
func Listen(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	unix.Unlink(path)
	old := unix.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	unix.Umask(old)
	if err == nil {
		err = unix.Listen(fd, 16)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen on %s: %w", path, err)
	}
	return fd, nil
}

// dial connects to the instance's socket.
func dial(dir, name string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("unix", SockPath(dir, name), timeout)
	if err != nil {
		if _, live := Live(dir, name); !live {
			CleanStale(dir, name)
			return nil, ErrNotRunning
		}
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	return c, nil
}

func request(c net.Conn, req string, timeout time.Duration) (*bufio.Reader, []byte, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		return nil, nil, fmt.Errorf("send %s: %w", req, err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, nil, fmt.Errorf("read reply to %s: %w", req, err)
	}
	var rep Reply
	if json.Unmarshal(line, &rep) == nil && rep.Error != "" {
		return nil, nil, errors.New(rep.Error)
	}
	return r, line, nil
}

// QueryStatus asks the instance name for its status. ErrNotRunning means no
// live instance; any other error means its state is unknown.
func QueryStatus(dir, name string, timeout time.Duration) (*Status, error) {
	c, err := dial(dir, name, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_, line, err := request(c, ReqStatus, timeout)
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(line, &st); err != nil {
		return nil, fmt.Errorf("bad status reply: %w", err)
	}
	return &st, nil
}

// Stop asks the instance to stop and waits up to timeout until the program
// and respawner itself are gone.
func Stop(dir, name string, timeout time.Duration) error {
	pid, _ := Live(dir, name)
	c, err := dial(dir, name, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	r, _, err := request(c, ReqStop, timeout)
	if err != nil {
		return err
	}
	// The instance closes the connection by exiting.
	deadline := time.Now().Add(timeout)
	c.SetDeadline(deadline)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("%s did not stop within %s", name, timeout)
	}
	if pid > 0 && !WaitGone(pid, time.Until(deadline)) {
		return fmt.Errorf("%s did not exit within %s", name, timeout)
	}
	return nil
}
