package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// ipamConf returns the configuration to give the IPAM plugin for a
// command that needs at least version least: the plugin's own stdin when
// the IPAM plugin speaks its cniVersion, else the same with the highest
// version both speak, as runtimes do not downgrade a delegated call
// (Debian 12's host-local, of plugins 1.1.1, stops at 1.0.0 while configs
// say 1.1.0). ok is false when no version fits.
func (p *plugin) ipamConf(ctx context.Context, conf *netConf, stdin []byte, least string) (_ []byte, ok bool, _ error) {
	path, err := p.exec.FindInPath(conf.IPAM.Type, filepath.SplitList(os.Getenv("CNI_PATH")))
	if err != nil {
		return nil, false, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("IPAM plugin %q: %v: install it in a directory of CNI_PATH or fix \"ipam\" in the network config", conf.IPAM.Type, err), "")
	}
	info, err := invoke.GetVersionInfo(ctx, path, p.exec)
	if err != nil {
		return nil, false, types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %s: version: %v", path, err), "")
	}
	best := ""
	for _, v := range info.SupportedVersions() {
		if ge(v, least) && ge(conf.CNIVersion, v) && (best == "" || ge(v, best)) {
			best = v
		}
	}
	switch best {
	case "":
		return nil, false, nil
	case conf.CNIVersion:
		return stdin, true, nil
	}
	var m map[string]any
	if err := json.Unmarshal(stdin, &m); err != nil {
		return nil, false, types.NewError(types.ErrDecodingFailure, "cannot parse the network configuration", err.Error())
	}
	m["cniVersion"] = best
	// prevResult is of the config's version, which the plugin does not
	// read; an IPAM plugin keeps its own record of what it gave.
	delete(m, "prevResult")
	b, err := json.Marshal(m)
	return b, true, err
}

func ge(a, b string) bool {
	ok, err := version.GreaterThanOrEqualTo(a, b)
	return err == nil && ok
}

// ipamAdd asks the IPAM plugin for the port's addresses, in CIDR form.
func (p *plugin) ipamAdd(ctx context.Context, conf *netConf, stdin []byte) ([]string, error) {
	b, ok, err := p.ipamConf(ctx, conf, stdin, "0.4.0")
	if err == nil && !ok {
		err = types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("IPAM plugin %q speaks no CNI version from 0.4.0 to %s", conf.IPAM.Type, conf.CNIVersion), "")
	}
	if err != nil {
		return nil, err
	}
	r, err := invoke.DelegateAdd(ctx, conf.IPAM.Type, b, p.exec)
	if err != nil {
		return nil, ipamError(conf, "add", err)
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, ipamError(conf, "add", err)
	}
	if len(res.IPs) == 0 {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %q gave no address", conf.IPAM.Type), "")
	}
	ips := make([]string, len(res.IPs))
	for i, ip := range res.IPs {
		ips[i] = ip.Address.String()
	}
	return ips, nil
}

func (p *plugin) ipamDel(ctx context.Context, conf *netConf, stdin []byte) error {
	b, ok, err := p.ipamConf(ctx, conf, stdin, "0.1.0")
	if err != nil || !ok {
		return err
	}
	if err := invoke.DelegateDel(ctx, conf.IPAM.Type, b, p.exec); err != nil {
		return ipamError(conf, "del", err)
	}
	return nil
}

func (p *plugin) ipamCheck(ctx context.Context, conf *netConf, stdin []byte) error {
	b, ok, err := p.ipamConf(ctx, conf, stdin, "0.4.0")
	if err != nil || !ok {
		return err
	}
	if err := invoke.DelegateCheck(ctx, conf.IPAM.Type, b, p.exec); err != nil {
		return ipamError(conf, "check", err)
	}
	return nil
}

// ipamStatus and ipamGC pass the command on to an IPAM plugin that
// speaks 1.1.0; one that does not has neither command.
func (p *plugin) ipamStatus(ctx context.Context, conf *netConf, stdin []byte) error {
	b, ok, err := p.ipamConf(ctx, conf, stdin, "1.1.0")
	if err != nil || !ok {
		return err
	}
	if err := invoke.DelegateStatus(ctx, conf.IPAM.Type, b, p.exec); err != nil {
		return ipamError(conf, "status", err)
	}
	return nil
}

func (p *plugin) ipamGC(ctx context.Context, conf *netConf, stdin []byte) error {
	b, ok, err := p.ipamConf(ctx, conf, stdin, "1.1.0")
	if err != nil || !ok {
		return err
	}
	if err := invoke.DelegateGC(ctx, conf.IPAM.Type, b, p.exec); err != nil {
		return ipamError(conf, "gc", err)
	}
	return nil
}

// ipamError names the IPAM plugin in its error, keeping its code.
func ipamError(conf *netConf, cmd string, err error) error {
	if te, ok := err.(*types.Error); ok {
		return types.NewError(te.Code, fmt.Sprintf("IPAM plugin %q: %s: %s", conf.IPAM.Type, cmd, te.Msg), te.Details)
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %q: %s: %v", conf.IPAM.Type, cmd, err), "")
}
