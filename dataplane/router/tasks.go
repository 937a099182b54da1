package router

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Tasks (MCP 2025-11-25). A task belongs to the backend that created it, so
// the task ids clients see name that server: "<server>.<upstream id>" (a
// server name never holds a dot). Every replica can then route tasks/get,
// tasks/result and tasks/cancel without remembering anything, for a
// per-client server: every replica continues the client's upstream session,
// which holds the task.
//
// A shared server's task lives in the upstream session of one replica (its
// stdio child), so its ids also name that replica, signed like relayed
// request ids (peers.go): "<server>.@<address>.<mac>.<upstream id>", and the
// other replicas relay the request there. tasks/list asks every server that
// offers tasks, on the session's home replica (peers.go), where its shared
// servers' tasks are made; a client without a session (2026-07-28) sees the
// shared servers' tasks of the replica that answers.

const (
	taskSep   = "."
	ownerMark = "@" // starts the owner replica part of a shared server's task id
)

// exposedTaskID is the id clients see of a task of server.
func (r *Router) exposedTaskID(server, id string) string {
	if b, ok := r.servers.Get(server); ok && !b.PerClient() && r.advertise != "" {
		addr := r.advertise
		return server + taskSep + ownerMark + b64.EncodeToString([]byte(addr)) + taskSep + r.addrMAC(addr) + taskSep + id
	}
	return server + taskSep + id
}

// parsedTask is an exposed task id read back.
type parsedTask struct {
	server, id string
	b          Server
	owner      string // the replica whose upstream session holds it; "" for this one or any
}

func (r *Router) parseTaskID(method, exposed string) (parsedTask, error) {
	server, id, ok := strings.Cut(exposed, taskSep)
	if !ok || server == "" || id == "" {
		return parsedTask{}, errorf(jsonrpc.CodeInvalidParams, "%s: unknown task %q: task ids of this gateway are <server>.<id>", method, exposed)
	}
	b, err := r.server(server)
	if err != nil {
		return parsedTask{}, errorf(jsonrpc.CodeInvalidParams, "%s: unknown task %q: %v", method, exposed, err)
	}
	t := parsedTask{server: server, id: id, b: b}
	if b.PerClient() || !strings.HasPrefix(id, ownerMark) {
		return t, nil
	}
	parts := strings.SplitN(id[len(ownerMark):], taskSep, 3)
	raw, err := b64.DecodeString(parts[0])
	if len(parts) != 3 || err != nil || len(raw) == 0 || !hmac.Equal([]byte(parts[1]), []byte(r.addrMAC(string(raw)))) || parts[2] == "" {
		return parsedTask{}, errorf(jsonrpc.CodeInvalidParams, "%s: unknown task %q: its replica part is not one this gateway signed", method, exposed)
	}
	t.id = parts[2]
	if owner := string(raw); owner != r.advertise {
		t.owner = owner
	}
	return t, nil
}

// rewriteTaskIDs renames the task ids in a backend's result (or
// notification params) from upstream to exposed form: a CreateTaskResult's
// task.taskId, a Task's taskId, and the related-task in _meta.
func (r *Router) rewriteTaskIDs(server string, res json.RawMessage) json.RawMessage {
	res = r.setTaskID(server, res)
	if s, e, ok, err := jsonrpc.Lookup(res, "task"); err == nil && ok && res[s] == '{' {
		res = jsonrpc.Splice(res, s, e, r.setTaskID(server, res[s:e]))
	}
	if ms, me, ok, err := jsonrpc.Lookup(res, "_meta"); err == nil && ok && res[ms] == '{' {
		meta := res[ms:me]
		if s, e, ok, err := jsonrpc.Lookup(meta, "io.modelcontextprotocol/related-task"); err == nil && ok && meta[s] == '{' {
			meta = jsonrpc.Splice(meta, s, e, r.setTaskID(server, meta[s:e]))
			res = jsonrpc.Splice(res, ms, me, meta)
		}
	}
	return res
}

// setTaskID renames obj.taskId when it is a string.
func (r *Router) setTaskID(server string, obj json.RawMessage) json.RawMessage {
	id, ok, err := jsonrpc.LookupString(obj, "taskId")
	if err != nil || !ok {
		return obj
	}
	out, err := jsonrpc.Set(obj, "taskId", quote(r.exposedTaskID(server, id)))
	if err != nil {
		return obj
	}
	return out
}

// task routes tasks/get, tasks/result and tasks/cancel by the server the
// task id names, on the replica it names.
func (r *Router) task(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	exposed, ok, err := jsonrpc.LookupString(req.Params, "taskId")
	if err != nil || !ok {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params need a string \"taskId\"", req.Method)
	}
	pt, err := r.parseTaskID(req.Method, exposed)
	if err != nil {
		return nil, err
	}
	if s != nil && s.Allow != nil && !s.Allow(pt.server) {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: unknown task %q", req.Method, exposed)
	}
	if pt.owner != "" {
		if s != nil && s.Relayed {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeUnavailable, Message: fmt.Sprintf("%s %q: the task lives on data plane %s, and this request was relayed here by another: check each data plane's --advertise-addr reaches that data plane itself", req.Method, exposed, pt.owner)}
		}
		res, err := r.proxy(ctx, pt.owner, s, req, out)
		if errors.Is(err, errUnreached) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeUnavailable, Message: fmt.Sprintf("%s %q: the task lives on data plane %s, which does not answer: %v", req.Method, exposed, pt.owner, err)}
		}
		return res, err
	}
	params, err := jsonrpc.Set(req.Params, "taskId", quote(pt.id))
	if err != nil {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params: %v", req.Method, err)
	}
	t := target{srv: pt.b, params: params}
	t.route.Server, t.route.Name = pt.server, pt.id
	// tasks/result may block until the task ends, and the backend may ask
	// the client for input meanwhile: it is a call like any other.
	res, err := r.forward(ctx, s, req, out, t, backend.Request{Method: req.Method, Retry: req.Method != "tasks/cancel", What: req.Method})
	if err != nil {
		return nil, upstreamErr(err, req.Method+" %q on server %q (state %s)", t)
	}
	return r.rewriteTaskIDs(pt.server, res), nil
}

// listTasks merges tasks/list of every server that offers tasks (the first
// page of each: a cursor is not followed).
func (r *Router) listTasks(ctx context.Context, s *front.Session, req *jsonrpc.Message) (json.RawMessage, error) {
	out := []byte(`{"tasks":[`)
	n := 0
	var errs []error
	for _, b := range r.servers.List() {
		if !hasCapability(b.Capabilities(), "tasks") || (s.Allow != nil && !s.Allow(b.Name())) {
			continue
		}
		res, err := b.Request(ctx, backend.Request{Method: req.Method, Params: json.RawMessage(`{}`), Retry: true, What: "tasks/list", Client: r.clientSession(s, b)})
		if err != nil {
			errs = append(errs, fmt.Errorf("server %q: %w", b.Name(), err))
			continue
		}
		ts, te, ok, err := jsonrpc.Lookup(res, "tasks")
		if err != nil || !ok {
			continue
		}
		var tasks []json.RawMessage
		if json.Unmarshal(res[ts:te], &tasks) != nil {
			continue
		}
		for _, t := range tasks {
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, r.setTaskID(b.Name(), t)...)
			n++
		}
	}
	if n == 0 && len(errs) > 0 {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeUnavailable, Message: "tasks/list: " + errors.Join(errs...).Error()}
	}
	return append(out, "]}"...), nil
}
