package catalog

import "fmt"

// Kind is one of the four MCP list kinds.
type Kind uint8

// The kinds, in the order of Kinds.
const (
	Tools Kind = iota
	Prompts
	Resources
	Templates
)

// Kinds is every kind, in the order the catalog builds them.
var Kinds = [4]Kind{Tools, Prompts, Resources, Templates}

// Desc describes how a kind appears on the wire. Fetching, caching, paging
// and routing all read this one table instead of switching on the kind.
type Desc struct {
	Method string // the list method, "tools/list"
	Field  string // the array member of its result, "tools"
	Key    string // the member that identifies an item, "name"
	// Prefixed kinds are exposed as <prefix><name>; the others keep their
	// URI unless another server took it first.
	Prefixed bool
}

var descs = [4]Desc{
	Tools:     {Method: "tools/list", Field: "tools", Key: "name", Prefixed: true},
	Prompts:   {Method: "prompts/list", Field: "prompts", Key: "name", Prefixed: true},
	Resources: {Method: "resources/list", Field: "resources", Key: "uri"},
	Templates: {Method: "resources/templates/list", Field: "resourceTemplates", Key: "uriTemplate"},
}

// Desc returns k's descriptor. k must be one of Kinds.
func (k Kind) Desc() Desc { return descs[k] }

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return k < Kind(len(descs)) }

// String is k's list method.
func (k Kind) String() string {
	if !k.Valid() {
		return fmt.Sprintf("list kind %d", uint8(k))
	}
	return descs[k].Method
}

// KindOfMethod returns the kind whose list method is method.
func KindOfMethod(method string) (Kind, bool) {
	for _, k := range Kinds {
		if descs[k].Method == method {
			return k, true
		}
	}
	return 0, false
}
