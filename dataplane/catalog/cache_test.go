package catalog_test

import (
	"encoding/json"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
)

func TestParsePageReadsCacheHints(t *testing.T) {
	for _, tc := range []struct {
		res  string
		want catalog.Cache
	}{
		{`{"tools":[],"ttlMs":5000,"cacheScope":"public"}`, catalog.Cache{TTLms: 5000, Public: true}},
		{`{"tools":[],"ttlMs":5000,"cacheScope":"private"}`, catalog.Cache{TTLms: 5000}},
		{`{"tools":[]}`, catalog.Cache{}},
		{`{"tools":[],"ttlMs":-3,"cacheScope":"public"}`, catalog.Cache{Public: true}},
		{`{"tools":[],"ttlMs":"x"}`, catalog.Cache{}},
	} {
		p, err := catalog.ParsePage(catalog.Tools, json.RawMessage(tc.res))
		if err != nil || p.Cache != tc.want {
			t.Errorf("ParsePage(%s).Cache = %+v, %v; want %+v", tc.res, p.Cache, err, tc.want)
		}
	}
}

func TestCatalogCacheIsTheMinimumOfItsServers(t *testing.T) {
	item := func(n string) catalog.Item {
		return catalog.Item{Key: n, Raw: json.RawMessage(`{"name":"` + n + `"}`)}
	}
	c := catalog.Build([]catalog.Server{
		{Name: "a", Lists: [4][]catalog.Item{catalog.Tools: {item("x")}}, Cache: [4]catalog.Cache{catalog.Tools: {TTLms: 9000, Public: true}, catalog.Prompts: {TTLms: 1}}},
		{Name: "b", Lists: [4][]catalog.Item{catalog.Tools: {item("y")}}, Cache: [4]catalog.Cache{catalog.Tools: {TTLms: 4000, Public: true}}},
		// Offers no tools: its hint does not count.
		{Name: "c", Lists: [4][]catalog.Item{catalog.Prompts: {item("p")}}},
	})
	if got := c.Cache(catalog.Tools); got != (catalog.Cache{TTLms: 4000, Public: true}) {
		t.Errorf("tools %+v, want 4000 public", got)
	}
	if got := c.Cache(catalog.Prompts); got != (catalog.Cache{}) {
		t.Errorf("prompts %+v, want 0 private (c gives no hint)", got)
	}
	if got := catalog.Build(nil).Cache(catalog.Tools); got != (catalog.Cache{}) {
		t.Errorf("empty catalog %+v", got)
	}
}
