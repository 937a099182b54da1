package app

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/credentials/insecure"
)

// A configuration New refuses after it dialled the control plane leaves
// nothing running: the connection is closed (its goroutines end).
func TestNewClosesItsConnectionOnError(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	_, err := New(Config{
		ControlPlane:      "127.0.0.1:1",
		ControlPlaneCreds: insecure.NewCredentials(),
		Advertise:         "127.0.0.1:8080",
		AllowedOrigins:    []string{"not an origin"},
	})
	if err == nil || !strings.Contains(err.Error(), "--allowed-origins") {
		t.Fatalf("New with a bad origin = %v, want an error naming --allowed-origins", err)
	}
}
