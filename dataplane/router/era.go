package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Backends of MCP 2026-07-28 (see backend/modern.go), as the router serves
// them to clients of either era:
//
//   - every routed request names its client (backend.Caller): a backend of
//     that revision gets the client's capabilities, client info and log
//     level in each request's _meta, since it keeps no session;
//   - an input_required result (a multi-round-trip request of that
//     revision) goes to a 2026-07-28 client unchanged; for a client of a
//     session era the gateway asks the client each input request as the
//     server-to-client request it replaces (relay.go, with its capability
//     check), retries the request with the answers, and returns the
//     complete result;
//   - the lists a 2026-07-28 client gets carry the minimum ttlMs of the
//     backends and cacheScope "private" unless every backend said "public"
//     (backends of earlier revisions count as 0 and private).

// maxInputRounds bounds the input_required rounds of one request, as
// mcp-go's client does.
const maxInputRounds = 10

// callerOf describes the client of s to a backend of MCP 2026-07-28: its
// capabilities and client info, and the log level it wants (its _meta
// logLevel, or its session's logging/setLevel).
func (r *Router) callerOf(s *front.Session) *backend.Caller {
	c := &backend.Caller{Capabilities: s.Capabilities, Name: s.ClientName, Version: s.ClientVersion}
	if s.Stateless() {
		c.LogLevel = s.LogLevel
		return c
	}
	rl := &r.relay
	rl.mu.Lock()
	if st, ok := rl.clients[s.ID]; ok && st.level >= 0 && st.level < len(levelNames) {
		c.LogLevel = levelNames[st.level]
	}
	rl.mu.Unlock()
	return c
}

// inputRequest is one entry of an input_required result's inputRequests.
type inputRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// bridgeInput completes a request whose result asks for input
// (resultType "input_required") for a client of a session era: each input
// request goes to the client as the request it stands for (sampling,
// elicitation, roots; refused with an error naming it when the client did
// not declare the capability), and the request is sent again with
// inputResponses and the echoed requestState, until a result is complete. A
// 2026-07-28 client gets the result as it is: it answers input_required
// itself. ctx must be the call's (relay.begin), so the client's answers find
// their way back.
func (r *Router) bridgeInput(ctx context.Context, s *front.Session, t target, br backend.Request, res json.RawMessage) (json.RawMessage, error) {
	if s.Stateless() {
		return res, nil
	}
	for round := 1; ; round++ {
		if kind, _, _ := jsonrpc.LookupString(res, "resultType"); kind != string(mcp.ResultTypeInputRequired) {
			return res, nil
		}
		if round > maxInputRounds {
			return nil, errorf(jsonrpc.CodeInternalError, "%s: server %q still asks for input after %d rounds of input_required", br.Method, t.route.Server, maxInputRounds)
		}
		var ir struct {
			InputRequests map[string]inputRequest `json:"inputRequests"`
			RequestState  json.RawMessage         `json:"requestState"`
		}
		if err := json.Unmarshal(res, &ir); err != nil {
			return nil, errorf(jsonrpc.CodeInternalError, "%s: server %q sent a malformed input_required result: %v", br.Method, t.route.Server, err)
		}
		answers, err := r.askClient(ctx, t.route.Server, ir.InputRequests)
		if err != nil {
			return nil, err
		}
		retry := br
		if retry.Params, err = retryParams(br.Params, answers, ir.RequestState); err != nil {
			return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params: %v", br.Method, err)
		}
		if res, err = t.srv.Request(ctx, retry); err != nil {
			return nil, err
		}
	}
}

// askClient relays each input request to the calling client (in id order)
// and returns the answers by id.
func (r *Router) askClient(ctx context.Context, server string, reqs map[string]inputRequest) (map[string]json.RawMessage, error) {
	ids := make([]string, 0, len(reqs))
	for id := range reqs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	answers := make(map[string]json.RawMessage, len(reqs))
	for _, id := range ids {
		q := reqs[id]
		switch q.Method {
		case string(mcp.MethodSamplingCreateMessage), string(mcp.MethodElicitationCreate), string(mcp.MethodListRoots):
		default:
			return nil, errorf(jsonrpc.CodeInternalError, "server %q asks for input with %q, which this gateway cannot ask a client of a session era for", server, q.Method)
		}
		ans, err := r.OnRequest(ctx, server, "", &jsonrpc.Message{Method: q.Method, Params: q.Params})
		if err != nil {
			var je *jsonrpc.Error
			if errors.As(err, &je) {
				return nil, &jsonrpc.Error{Code: je.Code, Data: je.Data, Message: fmt.Sprintf(
					"server %q needs %s to complete the request (an input_required result of MCP %s, asked of this client as a request): %s",
					server, q.Method, front.ModernProtocol, je.Message)}
			}
			return nil, err
		}
		answers[id] = ans
	}
	return answers, nil
}

// retryParams are the params of a request sent again with the answers to
// its input requests, and the state the server asked to have echoed.
func retryParams(params json.RawMessage, answers map[string]json.RawMessage, state json.RawMessage) (json.RawMessage, error) {
	if len(params) == 0 {
		params = json.RawMessage(`{}`)
	}
	a, err := json.Marshal(answers)
	if err != nil {
		return nil, err
	}
	if params, err = jsonrpc.Set(params, "inputResponses", a); err != nil {
		return nil, err
	}
	if len(state) > 0 && string(state) != "null" {
		return jsonrpc.Set(params, "requestState", state)
	}
	return params, nil
}

// withCache puts a composed list's caching hint at the front of its result
// (decorate then leaves it be).
func withCache(res json.RawMessage, c catalog.Cache) json.RawMessage {
	open := skipSpace(res)
	if open >= len(res) || res[open] != '{' {
		return res
	}
	scope := `"private"`
	if c.Public {
		scope = `"public"`
	}
	add := `"ttlMs":` + strconv.FormatInt(c.TTLms, 10) + `,"cacheScope":` + scope
	if res[open+1+skipSpace(res[open+1:])] != '}' {
		add += ","
	}
	return jsonrpc.Splice(res, open+1, open+1, []byte(add))
}
