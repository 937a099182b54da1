package authtoken

import (
	"fmt"
	"strings"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// RoleNames are the spellings of the roles, as mcpctl takes and prints them.
var RoleNames = []string{"admin", "viewer", "dataplane"}

// RoleName spells a role: admin, viewer, dataplane, or unknown.
func RoleName(r mcpmeshv1.Role) string {
	switch r {
	case mcpmeshv1.Role_ROLE_ADMIN:
		return "admin"
	case mcpmeshv1.Role_ROLE_VIEWER:
		return "viewer"
	case mcpmeshv1.Role_ROLE_DATAPLANE:
		return "dataplane"
	default:
		return "unknown"
	}
}

// ParseRole is RoleName's inverse.
func ParseRole(s string) (mcpmeshv1.Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "admin":
		return mcpmeshv1.Role_ROLE_ADMIN, nil
	case "viewer":
		return mcpmeshv1.Role_ROLE_VIEWER, nil
	case "dataplane":
		return mcpmeshv1.Role_ROLE_DATAPLANE, nil
	default:
		return mcpmeshv1.Role_ROLE_UNSPECIFIED, fmt.Errorf("role %q is not one of %s", s, strings.Join(RoleNames, ", "))
	}
}
