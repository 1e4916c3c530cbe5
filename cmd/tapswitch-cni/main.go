package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/tapswitch/tapswitch/internal/version"
)

func main() {
	skel.PluginMainFuncs(newPlugin().funcs(), supported, "tapswitch-cni "+version.String()+": the CNI plugin of tapswitch, which puts containers on tapswitch networks")
}
