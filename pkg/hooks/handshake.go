package hooks

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/respawner/respawner/pkg/hooks/proto"
)

// ProtocolVersion is the version of the hook protocol (proto/hooks.proto)
// that this package speaks. It changes only when the protocol does in a way
// that old plugins or old hosts cannot follow; a plugin built against another
// version is refused at launch with a *VersionError.
const ProtocolVersion = 1

// PluginName is the name of the hook plugin in go-plugin's plugin set, for
// plugins written without this package.
const PluginName = "hook"

// Handshake is the go-plugin handshake between respawner and its hook
// plugins. The magic cookie is not a secret: it only stops a plugin binary
// from doing anything when run by hand.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "RESPAWNER_PLUGIN",
	MagicCookieValue: "981918aa70f0bc9f9515c53afdae916e",
}

// hookPlugin is the go-plugin GRPCPlugin for the Hook service: the plugin
// side registers the server shim around impl, the host side gets a
// grpcClient.
type hookPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl   any          // plugin side only
	logger hclog.Logger // plugin side only
}

var _ plugin.GRPCPlugin = (*hookPlugin)(nil)

func (p *hookPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterHookServer(s, newGRPCServer(p.impl, p.logger))
	return nil
}

func (p *hookPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClient{c: pb.NewHookClient(c)}, nil
}

// pluginSets is the versioned plugin set, one version from day one so that a
// version 2 can be served beside it later.
func pluginSets(impl any, logger hclog.Logger) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &hookPlugin{impl: impl, logger: logger}},
	}
}
