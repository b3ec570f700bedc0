package pluginhost

import (
	"fmt"
	"net"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func reattachAddr(r *sdk.ReattachInfo) (net.Addr, error) {
	switch r.Network {
	case "unix":
		return net.ResolveUnixAddr("unix", r.Addr)
	case "tcp":
		return net.ResolveTCPAddr("tcp", r.Addr)
	}
	return nil, fmt.Errorf("reattach: unknown network %q", r.Network)
}
