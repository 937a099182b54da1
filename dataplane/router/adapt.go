package router

// Lister is a typed source of servers, such as *backend.Manager; Adapt
// turns it into Servers (Go slices are not covariant).
type Lister[S Server] interface {
	List() []S
	Get(name string) (S, bool)
}

// Adapt wraps a typed lister as Servers.
func Adapt[S Server](l Lister[S]) Servers { return adapter[S]{l} }

type adapter[S Server] struct{ l Lister[S] }

func (a adapter[S]) List() []Server {
	list := a.l.List()
	out := make([]Server, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

func (a adapter[S]) Get(name string) (Server, bool) {
	s, ok := a.l.Get(name)
	if !ok {
		return nil, false
	}
	return s, true
}
