// Command testchannelv0 is the test channel as a plugin built with an SDK
// that predates batched webhooks: its gRPC server answers Unimplemented to
// HandleWebhooks, as an older plugin's would, so tests can check that the
// host falls back to one HandleWebhook call per webhook.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	pb "github.com/switchboard-hub/switchboard/plugins/sdk/pluginv1"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

func main() {
	old := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == pb.Channel_HandleWebhooks_FullMethodName {
			return nil, status.Errorf(codes.Unimplemented, "unknown method HandleWebhooks for service switchboard.plugin.v1.Channel")
		}
		return handler(ctx, req)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: sdk.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			sdk.ProtocolVersion: {string(sdk.KindChannel): &sdk.GRPCPlugin{Kind: sdk.KindChannel, Impl: testplugins.NewChannel()}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(sdk.MaxMessageSize), grpc.MaxSendMsgSize(sdk.MaxMessageSize), grpc.ChainUnaryInterceptor(old))
			return grpc.NewServer(opts...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn}),
	})
}
