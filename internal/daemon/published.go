package daemon

import (
	"github.com/tapswitch/tapswitch/api"
	"github.com/tapswitch/tapswitch/internal/publish"
)

// publishedView is what the API reports of a published port.
func publishedView(px *publish.Proxy) api.PublishedCounters {
	s := px.Stats()
	return api.PublishedCounters{
		Publish:       px.Mapping().String(),
		Active:        s.Active,
		Total:         s.Total,
		Failed:        s.Failed,
		Dropped:       s.Dropped,
		Refused:       s.Refused,
		IdleClosed:    s.IdleClosed,
		BytesToTarget: s.BytesToTarget,
		BytesToClient: s.BytesToClient,
	}
}
