// Command mcpctl is the admin CLI of mcpmesh: it registers backend servers,
// changes settings and shows status through the control plane's gRPC API.
package main

import (
	"os"

	"github.com/mcpmesh/mcpmesh/mcpctl/cmd"
)

func main() { os.Exit(cmd.Execute()) }
