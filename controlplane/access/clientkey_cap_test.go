package access

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Live client keys are bounded: past the bound a create is refused with
// ResourceExhausted and a way out; revoked and expired keys do not count.
func TestClientKeysBounded(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()
	svc := NewClientKeyService(st, nil)
	svc.SetMaxLive(2)
	now := time.Unix(1800000000, 0)
	svc.now = func() time.Time { return now }
	create := func(ttl time.Duration) (*mcpmeshv1.CreateClientKeyResponse, error) {
		req := &mcpmeshv1.CreateClientKeyRequest{}
		if ttl > 0 {
			req.Ttl = durationpb.New(ttl)
		}
		return svc.CreateClientKey(ctx, req)
	}
	first, err := create(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create(time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err = create(0)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third live key: err = %v, want ResourceExhausted", err)
	}
	if _, err := svc.RevokeClientKey(ctx, &mcpmeshv1.RevokeClientKeyRequest{Id: first.GetKey().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := create(0); err != nil {
		t.Fatalf("after a revocation: %v", err)
	}
	now = now.Add(2 * time.Hour) // the 1h key expired
	if _, err := create(0); err != nil {
		t.Fatalf("after an expiry: %v", err)
	}
	if _, err := create(0); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("past the bound again: err = %v", err)
	}
}
