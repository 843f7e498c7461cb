package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tenantguard/tenantguard/internal/registry/authz"
)

const (
	// catalogMaxEntries is the largest page served, as Distribution's default.
	catalogMaxEntries = 1000
	// catalogMaxUpstreamPages bounds the upstream pages read for one page of a
	// filtered catalog (a million repositories).
	catalogMaxUpstreamPages = 1000
)

// serveCatalog serves /v2/_catalog filtered to the repositories the caller
// may pull. The upstream's list is sorted, so filtering keeps the order and
// the n/last pagination of the distribution spec works on the filtered
// list: the gateway reads upstream pages from last on until it has n
// visible names (or the list ends) and links to the next page itself.
func (g *Gateway) serveCatalog(w http.ResponseWriter, r *http.Request, caller Caller) {
	q := r.URL.Query()
	n := catalogMaxEntries
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			writeError(w, r, newError(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "n must be a non-negative number"))
			return
		}
		n = min(v, catalogMaxEntries)
	}
	last := q.Get("last")
	rules := g.cfg.Rules()
	id := caller.identity()

	ctx, cancel := g.upstreamContext(r)
	defer cancel()
	var visible []string
	after := last
	for page := 0; page < catalogMaxUpstreamPages && len(visible) <= n; page++ {
		names, more, err := g.catalogPage(ctx, after)
		if err != nil {
			writeError(w, r, err)
			return
		}
		for _, name := range names {
			if name > last && rules.Allowed(id, name).Has(authz.Pull) {
				visible = append(visible, name)
			}
		}
		if !more || len(names) == 0 {
			break
		}
		after = names[len(names)-1]
	}
	if visible == nil {
		visible = []string{}
	}
	if len(visible) > n {
		visible = visible[:n]
		if n > 0 {
			w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?%s>; rel="next"`, url.Values{"last": {visible[n-1]}, "n": {strconv.Itoa(n)}}.Encode()))
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string][]string{"repositories": visible})
}

// catalogPage reads one upstream catalog page after last.
//
// It asks for pages of catalogMaxEntries; a registry configured for smaller
// pages refuses that with 400, and is then asked for its default page size.
func (g *Gateway) catalogPage(ctx context.Context, last string) ([]string, bool, error) {
	q := url.Values{"n": {strconv.Itoa(catalogMaxEntries)}}
	if last != "" {
		q.Set("last", last)
	}
	var resp *http.Response
	for attempt := 0; attempt < 2; attempt++ {
		u := *g.cfg.Upstream
		u.Path, u.RawQuery = "/v2/_catalog", q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, false, err
		}
		resp, err = g.client.Do(req)
		if err != nil {
			g.cfg.Log.Warn("upstream catalog request failed", "error", err)
			return nil, false, newError(http.StatusBadGateway, CodeUnavailable, "the upstream registry did not answer the catalog request")
		}
		if resp.StatusCode != http.StatusBadRequest || attempt > 0 {
			break
		}
		resp.Body.Close()
		q.Del("n")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, newError(http.StatusBadGateway, CodeUnsupported, "the upstream registry answered the catalog request with %s", resp.Status)
	}
	var body struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		g.cfg.Log.Warn("upstream catalog unreadable", "error", err)
		return nil, false, newError(http.StatusBadGateway, CodeUnavailable, "the upstream catalog could not be read")
	}
	return body.Repositories, nextLink(resp.Header.Get("Link")) != "", nil
}
