package logging_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/internal/logging"
)

func TestLogsMaskURLCredentials(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := logging.New(&buf, "debug", format)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("http://bob:stringerpw@h/?token=stringertok")
		log = log.With("endpoint", "http://bob:withpw@h/mcp")
		log.WithGroup("g").Info("connect http://bob:msgpw@h failed",
			"err", fmt.Errorf("connect: %w", errors.New(`Post "http://bob:errpw@h/mcp?api_key=errkey": refused`)),
			"url", u,
			"grp", slog.GroupValue(slog.String("u", "https://x:grouppw@h")),
			"n", 3)
		out := buf.String()
		for _, s := range []string{"stringerpw", "stringertok", "withpw", "msgpw", "errpw", "errkey", "grouppw"} {
			if strings.Contains(out, s) {
				t.Errorf("%s log shows %q: %s", format, s, out)
			}
		}
		if !strings.Contains(out, "bob:***@h") || !strings.Contains(out, "n=3") && !strings.Contains(out, `"n":3`) {
			t.Errorf("%s log lost its content: %s", format, out)
		}
	}
}
