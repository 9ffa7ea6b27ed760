package hooks

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/respawner/respawner/pkg/hooks/proto"
)

// grpcClient is the host side of the Hook service. It only translates
// between Go values and the wire, and gRPC statuses into this package's
// errors.
type grpcClient struct {
	c pb.HookClient
}

func (g *grpcClient) info(ctx context.Context) (Info, error) {
	r, err := g.c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return Info{}, callError(ctx, "info", err)
	}
	in := Info{
		Version:   r.GetVersion(),
		Configure: r.GetConfigure(),
		Notify:    r.GetNotify(),
		Veto:      r.GetRestartPending(),
		Probe:     r.GetProbe(),
	}
	if in.Notify {
		// Kinds this respawner does not know (from a newer plugin) are kept:
		// they are never sent, and dropping them would turn a list of only
		// unknown kinds into "all".
		for _, k := range r.GetEvents() {
			in.Events = append(in.Events, Kind(k))
		}
		if len(in.Events) == 0 {
			in.Events = Kinds()
		}
	}
	return in, nil
}

func (g *grpcClient) configure(ctx context.Context, opts map[string][]string) (*ProbeConfig, error) {
	req := &pb.ConfigureRequest{}
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		for _, v := range opts[k] {
			req.Options = append(req.Options, &pb.Option{Key: k, Value: v})
		}
	}
	r, err := g.c.Configure(ctx, req)
	if err != nil {
		return nil, callError(ctx, "configure", err)
	}
	p := r.GetProbe()
	if p == nil {
		return nil, nil
	}
	pc := ProbeConfig{
		Interval:         time.Duration(p.GetIntervalNanos()),
		Timeout:          time.Duration(p.GetTimeoutNanos()),
		InitialDelay:     time.Duration(p.GetInitialDelayNanos()),
		FailureThreshold: int(p.GetFailureThreshold()),
		SuccessThreshold: int(p.GetSuccessThreshold()),
	}.WithDefaults()
	return &pc, nil
}

func (g *grpcClient) notify(ctx context.Context, ev Event) error {
	if _, err := g.c.Notify(ctx, &pb.NotifyRequest{Event: eventToPB(ev)}); err != nil {
		return callError(ctx, "notify", err)
	}
	return nil
}

func (g *grpcClient) restartPending(ctx context.Context, ev Event) (Verdict, error) {
	r, err := g.c.RestartPending(ctx, &pb.RestartPendingRequest{Event: eventToPB(ev)})
	if err != nil {
		return Allow(), callError(ctx, "restart-pending", err)
	}
	w := r.GetVerdict()
	v := Verdict{Decision: Decision(w.GetDecision()), Delay: time.Duration(w.GetDelayNanos()), Reason: w.GetReason()}
	switch v.Decision {
	case DecisionAllow, DecisionDeny, DecisionGiveUp:
		v.Delay = 0
	case DecisionDelay:
		if v.Delay <= 0 {
			return Allow(), fmt.Errorf("restart-pending: delay of %v: %w", v.Delay, ErrBadVerdict)
		}
	default:
		return Allow(), fmt.Errorf("restart-pending: unknown decision %d: %w", v.Decision, ErrBadVerdict)
	}
	return v, nil
}

func (g *grpcClient) probe(ctx context.Context) (ProbeResult, error) {
	r, err := g.c.Probe(ctx, &pb.ProbeRequest{})
	if err != nil {
		err = callError(ctx, "probe", err)
		return ProbeResult{Reason: err.Error()}, err
	}
	return ProbeResult{Healthy: r.GetHealthy(), Reason: r.GetReason()}, nil
}

func eventToPB(ev Event) *pb.Event {
	e := &pb.Event{
		Kind:        string(ev.Kind),
		Instance:    ev.Instance,
		Program:     ev.Program,
		Args:        ev.Args,
		Pid:         int64(ev.PID),
		ExitCode:    int32(ev.ExitCode),
		Signal:      ev.Signal,
		UptimeNanos: int64(ev.Uptime),
		Attempt:     int32(ev.Attempt),
		Limit:       int32(ev.Limit),
		Reason:      ev.Reason,
		Clean:       ev.Clean,
		Output:      ev.Output,
		Host:        ev.Host,
	}
	if !ev.Time.IsZero() {
		e.TimeUnixNano = ev.Time.UnixNano()
	}
	return e
}

// callError turns the error of a call into one that callers can branch on
// with errors.Is: the context's own error when the host's deadline passed or
// it gave up, ErrUnimplemented, ErrPanic, ErrUnavailable, and otherwise the
// plugin's message. op names the call ("notify").
func callError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", op, cerr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch st.Code() {
	case codes.Unimplemented:
		return fmt.Errorf("%s: %w", op, ErrUnimplemented)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", op, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("%s: %w", op, context.Canceled)
	case codes.Unavailable:
		return fmt.Errorf("%s: %w: %s", op, ErrUnavailable, st.Message())
	case codes.Internal:
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == panicReason && ei.GetDomain() == errorDomain {
				return fmt.Errorf("%s: %w: %s", op, ErrPanic, st.Message())
			}
		}
	}
	return &PluginError{Op: op, Message: st.Message()}
}
