package notify

import "testing"

func TestCoalesceAndUnsubscribe(t *testing.T) {
	var b Broadcaster
	ch, stop := b.Subscribe()
	b.Notify()
	b.Notify() // merged with the pending one; must not block
	<-ch
	select {
	case <-ch:
		t.Fatal("two signals delivered for a burst")
	default:
	}
	stop()
	b.Notify()
	select {
	case <-ch:
		t.Fatal("signal after unsubscribe")
	default:
	}
}
