// Package etcdhealth asks an etcd whether it is up, as the tests and the
// benchmark wait for the one they start.
package etcdhealth

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// Check asks etcd's /health endpoint at the client URL url through c and
// returns nil once etcd says it is healthy.
func Check(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
		return fmt.Errorf("/health: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}
