package router

import (
	"context"
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
// tasks/result and tasks/cancel without remembering anything; tasks/list
// asks every server that offers tasks.

const taskSep = "."

func exposedTaskID(server, id string) string { return server + taskSep + id }

func splitTaskID(exposed string) (server, id string, ok bool) {
	server, id, ok = strings.Cut(exposed, taskSep)
	return server, id, ok && server != "" && id != ""
}

// rewriteTaskIDs renames the task ids in a backend's result (or
// notification params) from upstream to exposed form: a CreateTaskResult's
// task.taskId, a Task's taskId, and the related-task in _meta.
func rewriteTaskIDs(server string, res json.RawMessage) json.RawMessage {
	res = setTaskID(server, res)
	if s, e, ok, err := jsonrpc.Lookup(res, "task"); err == nil && ok && res[s] == '{' {
		res = jsonrpc.Splice(res, s, e, setTaskID(server, res[s:e]))
	}
	if ms, me, ok, err := jsonrpc.Lookup(res, "_meta"); err == nil && ok && res[ms] == '{' {
		meta := res[ms:me]
		if s, e, ok, err := jsonrpc.Lookup(meta, "io.modelcontextprotocol/related-task"); err == nil && ok && meta[s] == '{' {
			meta = jsonrpc.Splice(meta, s, e, setTaskID(server, meta[s:e]))
			res = jsonrpc.Splice(res, ms, me, meta)
		}
	}
	return res
}

// setTaskID renames obj.taskId when it is a string.
func setTaskID(server string, obj json.RawMessage) json.RawMessage {
	id, ok, err := jsonrpc.LookupString(obj, "taskId")
	if err != nil || !ok {
		return obj
	}
	out, err := jsonrpc.Set(obj, "taskId", quote(exposedTaskID(server, id)))
	if err != nil {
		return obj
	}
	return out
}

// task routes tasks/get, tasks/result and tasks/cancel by the server the
// task id names.
func (r *Router) task(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	exposed, ok, err := jsonrpc.LookupString(req.Params, "taskId")
	if err != nil || !ok {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params need a string \"taskId\"", req.Method)
	}
	server, id, ok := splitTaskID(exposed)
	if !ok {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: unknown task %q: task ids of this gateway are <server>.<id>", req.Method, exposed)
	}
	b, err := r.server(server)
	if err != nil {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: unknown task %q: %v", req.Method, exposed, err)
	}
	params, err := jsonrpc.Set(req.Params, "taskId", quote(id))
	if err != nil {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params: %v", req.Method, err)
	}
	t := target{srv: b, params: params}
	t.route.Server, t.route.Name = server, id
	// tasks/result may block until the task ends, and the backend may ask
	// the client for input meanwhile: it is a call like any other.
	res, err := r.forward(ctx, s, req, out, t, backend.Request{Method: req.Method, Retry: req.Method != "tasks/cancel", What: req.Method})
	if err != nil {
		return nil, upstreamErr(err, req.Method+" %q on server %q (state %s)", t)
	}
	return rewriteTaskIDs(server, res), nil
}

// listTasks merges tasks/list of every server that offers tasks (the first
// page of each: a cursor is not followed).
func (r *Router) listTasks(ctx context.Context, s *front.Session, req *jsonrpc.Message) (json.RawMessage, error) {
	out := []byte(`{"tasks":[`)
	n := 0
	var errs []error
	for _, b := range r.servers.List() {
		if !hasCapability(b.Capabilities(), "tasks") {
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
			out = append(out, setTaskID(b.Name(), t)...)
			n++
		}
	}
	if n == 0 && len(errs) > 0 {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeUnavailable, Message: "tasks/list: " + errors.Join(errs...).Error()}
	}
	return append(out, "]}"...), nil
}
