// Command oldproto is a hook plugin that speaks only hook protocol version 2,
// which this respawner does not: the launch test checks that it is refused
// with an error that says so. It uses go-plugin directly, with the real
// handshake cookie, as a plugin built against a future pkg/hooks would.
package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/respawner/respawner/pkg/hooks"
	pb "github.com/respawner/respawner/pkg/hooks/proto"
)

const version = 2

// future registers the Hook service with every method unimplemented; the
// host never gets as far as calling one.
type future struct{ plugin.NetRPCUnsupportedPlugin }

func (future) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterHookServer(s, pb.UnimplementedHookServer{})
	return nil
}

func (future) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	hs := hooks.Handshake
	hs.ProtocolVersion = version
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: map[int]plugin.PluginSet{version: {hooks.PluginName: future{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           hooks.NewLogger(),
	})
}
