package hooks

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/respawner/respawner/pkg/hooks/proto"
)

// panicReason marks, in an errdetails.ErrorInfo of a codes.Internal status,
// an error that is a recovered panic rather than a transport fault.
const (
	panicReason = "PANIC"
	errorDomain = "respawner.hooks"
)

// grpcServer is the plugin side of the Hook service. It only translates
// between the wire and impl, whose capabilities it finds once by type
// assertion; a missing one answers codes.Unimplemented. A panic in impl is
// recovered and answered as codes.Internal, so one bad event does not take
// the plugin down.
type grpcServer struct {
	pb.UnimplementedHookServer
	impl       any
	log        hclog.Logger
	configurer Configurer
	notifier   Notifier
	vetoer     Vetoer
	prober     Prober
}

func newGRPCServer(impl any, log hclog.Logger) *grpcServer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &grpcServer{impl: impl, log: log}
	s.configurer, _ = impl.(Configurer)
	s.notifier, _ = impl.(Notifier)
	s.vetoer, _ = impl.(Vetoer)
	s.prober, _ = impl.(Prober)
	return s
}

// recover turns a panic in the implementation into a codes.Internal error
// carrying the panicReason detail, and logs it with its stack (to stderr,
// which the host forwards to its log). Use as `defer s.recover("Notify", &err)`.
func (s *grpcServer) recover(method string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	s.log.Error("hook panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	st := status.New(codes.Internal, fmt.Sprintf("panic in %s: %v", method, r))
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: panicReason, Domain: errorDomain}); derr == nil {
		st = d
	}
	*err = st.Err()
}

func unimplemented(capability string) error {
	return status.Errorf(codes.Unimplemented, "the plugin is not a %s", capability)
}

func (s *grpcServer) Info(ctx context.Context, _ *pb.InfoRequest) (resp *pb.InfoResponse, err error) {
	defer s.recover("Info", &err)
	resp = &pb.InfoResponse{
		Configure:      s.configurer != nil,
		Notify:         s.notifier != nil,
		RestartPending: s.vetoer != nil,
		Probe:          s.prober != nil,
	}
	if v, ok := s.impl.(Versioner); ok {
		resp.Version = v.Version()
	}
	if sub, ok := s.impl.(Subscriber); ok && s.notifier != nil {
		for _, k := range sub.Events() {
			resp.Events = append(resp.Events, string(k))
		}
	}
	return resp, nil
}

func (s *grpcServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (resp *pb.ConfigureResponse, err error) {
	defer s.recover("Configure", &err)
	m := make(map[string][]string, len(req.GetOptions()))
	for _, o := range req.GetOptions() {
		m[o.GetKey()] = append(m[o.GetKey()], o.GetValue())
	}
	opts := NewOptions(m)
	if s.configurer != nil {
		err = s.configurer.Configure(ctx, opts)
	} else {
		err = opts.Err() // reports every option as unknown
	}
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp = &pb.ConfigureResponse{}
	if s.prober != nil {
		pc := DefaultProbeConfig
		if c, ok := s.impl.(ProbeConfigurer); ok {
			pc = c.ProbeConfig().WithDefaults()
		}
		resp.Probe = &pb.ProbeConfig{
			IntervalNanos:     int64(pc.Interval),
			TimeoutNanos:      int64(pc.Timeout),
			InitialDelayNanos: int64(pc.InitialDelay),
			FailureThreshold:  int32(pc.FailureThreshold),
			SuccessThreshold:  int32(pc.SuccessThreshold),
		}
	}
	return resp, nil
}

func (s *grpcServer) Notify(ctx context.Context, req *pb.NotifyRequest) (resp *pb.NotifyResponse, err error) {
	if s.notifier == nil {
		return nil, unimplemented("Notifier")
	}
	defer s.recover("Notify", &err)
	if err := s.notifier.Notify(ctx, eventFromPB(req.GetEvent())); err != nil {
		return nil, err
	}
	return &pb.NotifyResponse{}, nil
}

func (s *grpcServer) RestartPending(ctx context.Context, req *pb.RestartPendingRequest) (resp *pb.RestartPendingResponse, err error) {
	if s.vetoer == nil {
		return nil, unimplemented("Vetoer")
	}
	defer s.recover("RestartPending", &err)
	v, err := s.vetoer.RestartPending(ctx, eventFromPB(req.GetEvent()))
	if err != nil {
		return nil, err
	}
	return &pb.RestartPendingResponse{Verdict: &pb.Verdict{
		Decision:   pb.Decision(v.Decision),
		DelayNanos: int64(v.Delay),
		Reason:     v.Reason,
	}}, nil
}

func (s *grpcServer) Probe(ctx context.Context, _ *pb.ProbeRequest) (resp *pb.ProbeResponse, err error) {
	if s.prober == nil {
		return nil, unimplemented("Prober")
	}
	defer s.recover("Probe", &err)
	r, err := s.prober.Probe(ctx)
	if err != nil {
		return nil, err
	}
	return &pb.ProbeResponse{Healthy: r.Healthy, Reason: r.Reason}, nil
}

func eventFromPB(e *pb.Event) Event {
	ev := Event{
		Kind:     Kind(e.GetKind()),
		Instance: e.GetInstance(),
		Program:  e.GetProgram(),
		Args:     e.GetArgs(),
		PID:      int(e.GetPid()),
		ExitCode: int(e.GetExitCode()),
		Signal:   e.GetSignal(),
		Uptime:   time.Duration(e.GetUptimeNanos()),
		Attempt:  int(e.GetAttempt()),
		Limit:    int(e.GetLimit()),
		Reason:   e.GetReason(),
		Clean:    e.GetClean(),
		Output:   e.GetOutput(),
		Host:     e.GetHost(),
	}
	if ns := e.GetTimeUnixNano(); ns != 0 {
		ev.Time = time.Unix(0, ns)
	}
	return ev
}
