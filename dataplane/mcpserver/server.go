package mcpserver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/internal/version"
)

// Options configure the aggregated server.
type Options struct {
	// Source lists the backends; required.
	Source Source
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Hooks, when set, are installed on the MCP server (e.g. request metrics).
	Hooks *server.Hooks
	// Instructions are sent to clients in the initialize result.
	Instructions string
}

// Server is the aggregated MCP server. Refresh rebuilds what it serves from
// the current backends; request handlers route to the owning backend.
type Server struct {
	src    Source
	log    *slog.Logger
	mcp    *server.MCPServer
	routes atomic.Pointer[routes]
	// lister is a twin of mcp with the same options and no items: list
	// requests are served by it (paginate_http.go), so that mcp-go does not
	// copy and sort every item of mcp for each page it never returns.
	lister *server.MCPServer

	// Pagination (paginate.go): the lists served, the settings and secret of
	// the latest snapshot, and the plans of list requests in flight.
	lists   atomic.Pointer[lists]
	pageCfg atomic.Pointer[pageConfig]
	plans   plans

	// mu serialises Refresh; the fingerprints below are what mcp-go currently
	// holds, so a refresh can tell which lists really changed.
	mu          sync.Mutex
	toolFP      map[string]string
	promptFP    map[string]string
	resourceFP  map[string]string
	templateFP  map[string]string
	refreshSeen bool
}

// resourceRoute says which backend serves an exposed resource URI, and under
// which URI the backend knows it.
type resourceRoute struct {
	server string
	uri    string
}

// templateRoute is one backend template that keeps its original form; reads
// of URIs it matches go to its server.
type templateRoute struct {
	server   string
	template *mcp.URITemplate
}

// nameRoute says which backend serves an exposed tool or prompt name, and
// under which name the backend knows it.
type nameRoute struct {
	server string
	name   string
}

// routes is the immutable routing table of one refresh, swapped atomically so
// handlers never see a half-built table.
type routes struct {
	tools     map[string]nameRoute
	prompts   map[string]nameRoute
	resources map[string]resourceRoute
	templates []templateRoute // servers by name, then upstream order
	// shadowed lists, per server, the exposed names of its tools and prompts
	// that an earlier server (by name) already exposes.
	shadowed map[string][]string
}

func newRoutes() *routes {
	return &routes{
		tools:     map[string]nameRoute{},
		prompts:   map[string]nameRoute{},
		resources: map[string]resourceRoute{},
		shadowed:  map[string][]string{},
	}
}

// Shadowed returns, per server, the exposed names of its tools and prompts
// that are not served because an earlier server by name exposes the same
// name: with an empty --prefix two servers can offer one name, and the first
// keeps it. (A contested resource URI is rewritten instead.) The map must not
// be modified.
func (s *Server) Shadowed() map[string][]string { return s.routes.Load().shadowed }

// New builds the aggregated server. It serves nothing until Refresh.
func New(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, fmt.Errorf("mcpserver options: Source is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{src: opts.Source, log: log}
	s.routes.Store(newRoutes())
	s.lists.Store(&lists{})
	s.pageCfg.Store(newPageConfig())
	serverOpts := []server.ServerOption{
		server.WithToolCapabilities(true),
		server.WithPromptCapabilities(true),
		server.WithResourceCapabilities(false, true),
		server.WithRecovery(),
		server.WithResourceRecovery(),
		// No WithPaginationLimit: the list hooks serve every list, paged
		// or whole (paginate.go).
		server.WithHooks(s.paginationHooks(opts.Hooks)),
	}
	if opts.Instructions != "" {
		serverOpts = append(serverOpts, server.WithInstructions(opts.Instructions))
	}
	s.mcp = server.NewMCPServer("mcpmesh", version.Version, serverOpts...)
	s.lister = server.NewMCPServer("mcpmesh", version.Version, serverOpts...)
	return s, nil
}

// MCPServer returns the underlying mcp-go server, for the HTTP transports.
func (s *Server) MCPServer() *server.MCPServer { return s.mcp }

// aggregate is what one refresh computed: the items to register per kind and
// their fingerprints.
type aggregate struct {
	tools      []server.ServerTool
	toolFP     map[string]string
	prompts    []server.ServerPrompt
	promptFP   map[string]string
	resources  []server.ServerResource
	resourceFP map[string]string
	templates  []server.ServerResourceTemplate
	templateFP map[string]string
	routes     *routes
	lists      *lists
}

// Refresh rebuilds the aggregated lists from the backends that are ready and
// updates mcp-go in one batch per kind, so clients get at most one
// list_changed per list and only for lists that actually changed. It is safe
// to call concurrently and from any goroutine.
func (s *Server) Refresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	// mcp-go panics on some tool definitions; build() filters those out, and
	// this guard keeps a definition we did not foresee from taking the data
	// plane down.
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("refresh aggregated MCP server: recovered panic", "panic", fmt.Sprint(r))
		}
	}()

	agg := s.build()
	// Routes first: a client told about a new item must be able to use it.
	s.routes.Store(agg.routes)
	first := !s.refreshSeen
	s.refreshSeen = true
	if first || !maps.Equal(s.toolFP, agg.toolFP) {
		s.mcp.SetTools(agg.tools...)
		s.toolFP = agg.toolFP
	}
	if first || !maps.Equal(s.promptFP, agg.promptFP) {
		s.mcp.SetPrompts(agg.prompts...)
		s.promptFP = agg.promptFP
	}
	if first || !maps.Equal(s.resourceFP, agg.resourceFP) {
		s.mcp.SetResources(agg.resources...)
		s.resourceFP = agg.resourceFP
	}
	if first || !maps.Equal(s.templateFP, agg.templateFP) {
		s.mcp.SetResourceTemplates(agg.templates...)
		s.templateFP = agg.templateFP
	}
	// After mcp-go holds the items: a client that lists one can use it.
	s.lists.Store(agg.lists)
	s.log.Debug("aggregated MCP server refreshed",
		"tools", len(agg.tools), "prompts", len(agg.prompts),
		"resources", len(agg.resources), "resource_templates", len(agg.templates))
}

func (s *Server) build() *aggregate {
	agg := &aggregate{
		toolFP:     map[string]string{},
		promptFP:   map[string]string{},
		resourceFP: map[string]string{},
		templateFP: map[string]string{},
		routes:     newRoutes(),
		lists:      &lists{},
	}
	backends := s.src.List()
	for _, b := range backends {
		if !b.Ready() {
			continue
		}
		srv, prefix := b.Name(), b.Prefix()
		s.addTools(agg, srv, prefix, b.Tools())
		s.addPrompts(agg, srv, prefix, b.Prompts())
	}
	// Resources and templates in a second pass over the same order: the first
	// server by name keeps a contested URI.
	for _, b := range backends {
		if !b.Ready() {
			continue
		}
		s.addResources(agg, b.Name(), b.Resources())
		s.addTemplates(agg, b.Name(), b.ResourceTemplates())
	}
	return agg
}

func (s *Server) addTools(agg *aggregate, srv, prefix string, tools []mcp.Tool) {
	for _, t := range tools {
		log := s.log.With("server", srv, "tool", t.Name)
		if t.Name == "" {
			log.Warn("skipping backend tool: empty name")
			continue
		}
		upstream := t.Name
		t.Name = prefix + t.Name
		if _, dup := agg.toolFP[t.Name]; dup {
			agg.shadow(log, "tool", srv, t.Name, agg.routes.tools[t.Name].server)
			continue
		}
		// mcp-go refuses to marshal a tool that carries both schema forms;
		// the raw bytes are the faithful copy of what the backend sent.
		if len(t.RawInputSchema) > 0 {
			t.InputSchema = mcp.ToolInputSchema{}
		}
		if len(t.RawOutputSchema) > 0 {
			t.OutputSchema = mcp.ToolOutputSchema{}
		}
		if t.Execution != nil {
			if t.Execution.TaskSupport == mcp.TaskSupportRequired {
				log.Warn("skipping backend tool: it requires task execution, which the gateway does not relay")
				continue
			}
			// Calls are relayed synchronously; do not advertise tasks.
			t.Execution = nil
		}
		if err := mcp.ValidateParamHeaderAnnotations(&t); err != nil {
			log.Warn("skipping backend tool: invalid x-mcp-header annotations", "err", err)
			continue
		}
		fp, err := json.Marshal(t)
		if err != nil {
			log.Warn("skipping backend tool: cannot encode its definition", "err", err)
			continue
		}
		agg.toolFP[t.Name] = string(fp)
		agg.routes.tools[t.Name] = nameRoute{server: srv, name: upstream}
		agg.lists.tools.add(srv, prefix, t.Name, t)
		agg.tools = append(agg.tools, server.ServerTool{Tool: t, Handler: s.callTool})
	}
}

func (s *Server) addPrompts(agg *aggregate, srv, prefix string, prompts []mcp.Prompt) {
	for _, p := range prompts {
		log := s.log.With("server", srv, "prompt", p.Name)
		if p.Name == "" {
			log.Warn("skipping backend prompt: empty name")
			continue
		}
		upstream := p.Name
		p.Name = prefix + p.Name
		if _, dup := agg.promptFP[p.Name]; dup {
			agg.shadow(log, "prompt", srv, p.Name, agg.routes.prompts[p.Name].server)
			continue
		}
		fp, err := json.Marshal(p)
		if err != nil {
			log.Warn("skipping backend prompt: cannot encode its definition", "err", err)
			continue
		}
		agg.promptFP[p.Name] = string(fp)
		agg.routes.prompts[p.Name] = nameRoute{server: srv, name: upstream}
		agg.lists.prompts.add(srv, prefix, p.Name, p)
		agg.prompts = append(agg.prompts, server.ServerPrompt{Prompt: p, Handler: s.getPrompt})
	}
}

func (s *Server) addResources(agg *aggregate, srv string, resources []mcp.Resource) {
	for _, r := range resources {
		log := s.log.With("server", srv, "uri", r.URI)
		if r.URI == "" {
			log.Warn("skipping backend resource: empty uri")
			continue
		}
		upstream := r.URI
		if _, taken := agg.routes.resources[r.URI]; taken {
			r.URI = meshURI(srv, upstream)
			if _, taken := agg.routes.resources[r.URI]; taken {
				log.Warn("skipping backend resource: duplicate uri")
				continue
			}
		}
		fp, err := json.Marshal(r)
		if err != nil {
			log.Warn("skipping backend resource: cannot encode its definition", "err", err)
			continue
		}
		agg.routes.resources[r.URI] = resourceRoute{server: srv, uri: upstream}
		agg.resourceFP[r.URI] = string(fp)
		agg.lists.resources.add(srv, "", r.URI, r)
		agg.resources = append(agg.resources, server.ServerResource{Resource: r, Handler: s.readResource})
	}
}

func (s *Server) addTemplates(agg *aggregate, srv string, templates []mcp.ResourceTemplate) {
	for _, t := range templates {
		if t.URITemplate == nil || t.URITemplate.Template == nil || t.URITemplate.Raw() == "" {
			s.log.Warn("skipping backend resource template: empty uriTemplate", "server", srv, "name", t.Name)
			continue
		}
		raw := t.URITemplate.Raw()
		log := s.log.With("server", srv, "uri_template", raw)
		if _, taken := agg.templateFP[raw]; taken {
			mt, err := meshTemplate(srv, raw)
			if err != nil {
				log.Warn("skipping backend resource template: cannot rewrite contested template", "err", err)
				continue
			}
			if _, taken := agg.templateFP[mt.Raw()]; taken {
				log.Warn("skipping backend resource template: duplicate uri template")
				continue
			}
			t.URITemplate = mt
		} else {
			agg.routes.templates = append(agg.routes.templates, templateRoute{server: srv, template: t.URITemplate})
		}
		fp, err := json.Marshal(t)
		if err != nil {
			log.Warn("skipping backend resource template: cannot encode its definition", "err", err)
			continue
		}
		agg.templateFP[t.URITemplate.Raw()] = string(fp)
		agg.lists.templates.add(srv, "", t.URITemplate.Raw(), t)
		agg.templates = append(agg.templates, server.ServerResourceTemplate{Template: t, Handler: s.readResource})
	}
}

// shadow records that server srv's item exposed as name is not served
// because server keeper, earlier by name, exposes the same name.
func (agg *aggregate) shadow(log *slog.Logger, kind, srv, name, keeper string) {
	if keeper == "" || keeper == srv {
		log.Warn("skipping backend "+kind+": the server lists the name twice", "exposed", name)
		return
	}
	log.Warn("skipping backend "+kind+": another server exposes the same name, and the first server by name keeps it", "exposed", name, "kept_by", keeper)
	agg.routes.shadowed[srv] = append(agg.routes.shadowed[srv], name)
}
