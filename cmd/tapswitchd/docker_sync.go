package main

import (
	"fmt"
	"os"

	"github.com/tapswitch/tapswitch/internal/dockerapi"
)

const dockerHostHelp = "dockerd's API `URL` (unix:///path/to/docker.sock), which --docker asks for the names of Docker's networks and containers and re-syncs with after dockerd restarts (default: $DOCKER_HOST if it is a unix:// URL, else " + dockerapi.DefaultHost + ")"

// dockerHost is the dockerd API the Docker sync talks to: --docker-host,
// else DOCKER_HOST, else dockerd's default socket. A --docker-host that
// is no unix:// URL is an error; a DOCKER_HOST that is not (a remote
// dockerd, meant for the docker client) is passed over, with a warning.
func (s *server) dockerHost() (string, error) {
	if s.o.dockerHost != "" {
		if err := checkDockerHost(s.o.dockerHost); err != nil {
			return "", err
		}
		return s.o.dockerHost, nil
	}
	if env := os.Getenv("DOCKER_HOST"); env != "" {
		if _, err := dockerapi.SocketPath(env); err == nil {
			return env, nil
		}
		s.log.Warn("DOCKER_HOST is not a unix:// URL; asking dockerd at its default socket (set --docker-host to choose)", "DOCKER_HOST", env, "docker_host", dockerapi.DefaultHost)
	}
	return dockerapi.DefaultHost, nil
}

// startDockerSync starts the daemon's sync with dockerd: names of
// Docker's networks and containers, and re-syncs after dockerd's
// restarts. A dockerd that does not answer is waited for, and leaves the
// provisional names meanwhile.
func (s *server) startDockerSync() {
	host, err := s.dockerHost()
	if err == nil {
		err = s.d.StartDockerSync(host)
	}
	if err != nil {
		s.log.Error("names of Docker's networks and containers are not asked of dockerd; they keep their ids", "err", err)
		return
	}
	s.log.Info("asking dockerd for names, and re-syncing after its restarts", "docker_host", host)
}

// checkDockerHost refuses a --docker-host that is set and is no unix://
// URL.
func checkDockerHost(host string) error {
	if host == "" {
		return nil
	}
	if _, err := dockerapi.SocketPath(host); err != nil {
		return fmt.Errorf("--docker-host: %w", err)
	}
	return nil
}

// checkDockerFlags refuses --docker-plugin and --docker-host without
// --docker: they would be ignored, and Docker would find no driver.
func checkDockerFlags(o options) error {
	if o.docker {
		return nil
	}
	switch {
	case o.dockerPluginSet:
		return fmt.Errorf("--docker-plugin %q is the name of the Docker driver, which only --docker serves: add --docker", o.dockerPlugin)
	case o.dockerHost != "":
		return fmt.Errorf("--docker-host %q is for the Docker driver, which only --docker serves: add --docker", o.dockerHost)
	}
	return nil
}
