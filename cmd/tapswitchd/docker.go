package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/tapswitch/tapswitch/internal/docker"
	"github.com/tapswitch/tapswitch/internal/fdset"
)

// pluginDir is where Docker looks for network plugins' sockets; a
// variable for tests.
var pluginDir = "/run/docker/plugins"

// defaultPluginName is the driver's name in docker network create -d.
const defaultPluginName = "tapswitch"

// pluginFDName names the plugin listener among the descriptors handed
// over.
const pluginFDName = "docker-plugin"

// pluginNameRE is what Docker takes as a plugin's name, and a file name.
var pluginNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// pluginSocket is the socket of the plugin name.
func pluginSocket(name string) (string, error) {
	if !pluginNameRE.MatchString(name) {
		return "", fmt.Errorf("--docker-plugin %q: use 1 to 64 letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return filepath.Join(pluginDir, name+".sock"), nil
}

// openPlugin opens the plugin socket: the listener handed over in set
// if it is the socket's, else a new one. The directory is made 0755 if
// missing; the socket is root's, 0600. A socket a killed daemon left is
// replaced; one a live process answers on is not.
func (s *server) openPlugin(set *fdset.Set) error {
	if !s.o.docker {
		return nil
	}
	if err := checkDockerHost(s.o.dockerHost); err != nil {
		return err
	}
	path, err := pluginSocket(s.o.dockerPlugin)
	if err != nil {
		return err
	}
	if fd := set.TakeOne(pluginFDName); fd >= 0 {
		ln, err := fileListener(fd)
		if err == nil {
			if ul, ok := ln.(*net.UnixListener); ok && ul.Addr().String() == path {
				ul.SetUnlinkOnClose(false)
				s.pln, s.pluginPath = ul, path
				return nil
			}
			ln.Close()
			err = fmt.Errorf("it listens on %s, not %s", ln.Addr(), path)
		}
		s.log.Warn("plugin listener handed over not used; listening afresh", "err", err)
	}
	ln, err := listenPlugin(path)
	if err != nil {
		return err
	}
	s.pln, s.pluginPath = ln, path
	return nil
}

func listenPlugin(path string) (*net.UnixListener, error) {
	busy := fmt.Sprintf("another process serves the Docker plugin socket %s (a tapswitchd with another --state-dir?); stop it, or give this one another --docker-plugin name", path)
	if err := clearSocket(path, "plugin socket", busy); err != nil {
		return nil, err
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The daemon runs as root: the socket is root's.
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// closePluginListener closes the plugin listener of a start that failed,
// and removes its socket.
func (s *server) closePluginListener() {
	if s.pln == nil {
		return
	}
	s.pln.Close()
	os.Remove(s.pluginPath)
	s.pln = nil
}

// servePlugin serves the network and IPAM driver on the plugin socket.
func (s *server) servePlugin() {
	if s.pln == nil {
		return
	}
	h := docker.NewHandler(s.d.Docker(), s.log.With("docker_plugin", s.o.dockerPlugin))
	s.psrv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: apiReadHeaderTimeout,
		ReadTimeout:       apiReadTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    apiMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv, ln := s.psrv, s.pln
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("Docker plugin socket failed", "err", err)
		}
	}()
	s.log.Info("serving the Docker network and IPAM driver", "plugin", s.o.dockerPlugin, "socket", s.pluginPath)
	s.startDockerSync()
}

// stopPlugin stops serving the plugin socket; calls in progress finish.
// With remove, the socket goes too.
func (s *server) stopPlugin(remove bool) {
	if s.psrv == nil {
		return
	}
	s.d.StopDockerSync()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.psrv.Shutdown(ctx)
	s.psrv = nil
	if remove {
		os.Remove(s.pluginPath)
	}
}

// handPluginOver stops serving the plugin socket and adds a copy of its
// listener to set; Docker's calls wait in its backlog meanwhile.
func (s *server) handPluginOver(set *fdset.Set, log *slog.Logger) {
	if s.pln == nil {
		return
	}
	fd, err := dupListener(s.pln)
	s.stopPlugin(false)
	if err != nil {
		log.Warn("plugin listener not handed over; the successor listens afresh", "err", err)
		os.Remove(s.pluginPath)
		s.pln = nil
		return
	}
	set.Add(pluginFDName, fd)
}

// resumePlugin serves the plugin socket again after a hand-over that
// did not happen, on the listener kept in set.
func (s *server) resumePlugin(set *fdset.Set) {
	if !s.o.docker {
		return
	}
	if err := s.openPlugin(set); err != nil {
		s.log.Error("Docker plugin socket not served after a failed hand-over; restart tapswitchd", "err", err)
		return
	}
	s.servePlugin()
}
