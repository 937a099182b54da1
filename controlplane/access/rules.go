package access

import (
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

const (
	admin     = mcpmeshv1.Role_ROLE_ADMIN
	viewer    = mcpmeshv1.Role_ROLE_VIEWER
	dataplane = mcpmeshv1.Role_ROLE_DATAPLANE
)

// The role sets the rules below use. Admin may call everything; viewer the
// calls that only read; dataplane only what a data plane calls (the config
// stream, which also carries its health reports up). Admin may open the
// config stream too, but only a dataplane credential is sent its secrets
// (ReceivesSecrets).
var (
	adminOnly     = []mcpmeshv1.Role{admin}
	readOnly      = []mcpmeshv1.Role{admin, viewer}
	dataPlaneOnly = []mcpmeshv1.Role{admin, dataplane}
	anyRole       = []mcpmeshv1.Role{admin, viewer, dataplane}
)

// rules maps every RPC of every service the control plane serves to the roles
// allowed to call it. A method missing here is denied to everyone (and fails
// TestEveryRPCHasARule), so a new RPC must be given its roles on purpose.
var rules = map[string][]mcpmeshv1.Role{
	mcpmeshv1.RegistryService_CreateServer_FullMethodName:   adminOnly,
	mcpmeshv1.RegistryService_CreateServers_FullMethodName:  adminOnly,
	mcpmeshv1.RegistryService_UpdateServer_FullMethodName:   adminOnly,
	mcpmeshv1.RegistryService_DeleteServer_FullMethodName:   adminOnly,
	mcpmeshv1.RegistryService_GetServer_FullMethodName:      readOnly,
	mcpmeshv1.RegistryService_ListServers_FullMethodName:    readOnly,
	mcpmeshv1.RegistryService_GetSettings_FullMethodName:    readOnly,
	mcpmeshv1.RegistryService_SetSetting_FullMethodName:     adminOnly,
	mcpmeshv1.RegistryService_ListDataPlanes_FullMethodName: readOnly,
	mcpmeshv1.RegistryService_GetStatus_FullMethodName:      readOnly,
	mcpmeshv1.RegistryService_WatchStatus_FullMethodName:    readOnly,
	mcpmeshv1.RegistryService_GetVersion_FullMethodName:     readOnly,

	mcpmeshv1.DiscoveryService_StreamConfig_FullMethodName: dataPlaneOnly,

	mcpmeshv1.TokenService_CreateToken_FullMethodName: adminOnly,
	mcpmeshv1.TokenService_ListTokens_FullMethodName:  readOnly,
	mcpmeshv1.TokenService_RevokeToken_FullMethodName: adminOnly,
	mcpmeshv1.TokenService_WhoAmI_FullMethodName:      anyRole,

	mcpmeshv1.OAuthService_ListAuthorizations_FullMethodName:    readOnly,
	mcpmeshv1.OAuthService_BeginAuthorization_FullMethodName:    adminOnly,
	mcpmeshv1.OAuthService_CompleteAuthorization_FullMethodName: adminOnly,
	mcpmeshv1.OAuthService_RevokeAuthorization_FullMethodName:   adminOnly,
	// A data plane asks for a refresh when a backend refuses its token.
	mcpmeshv1.OAuthService_RefreshAuthorization_FullMethodName: dataPlaneOnly,

	mcpmeshv1.SecretService_RotateClusterSecret_FullMethodName: adminOnly,

	mcpmeshv1.ClientKeyService_CreateClientKey_FullMethodName: adminOnly,
	mcpmeshv1.ClientKeyService_ListClientKeys_FullMethodName:  readOnly,
	mcpmeshv1.ClientKeyService_RevokeClientKey_FullMethodName: adminOnly,

	// A backup holds every secret in clear; a restore replaces everything.
	mcpmeshv1.BackupService_Backup_FullMethodName:  adminOnly,
	mcpmeshv1.BackupService_Restore_FullMethodName: adminOnly,
}

// Allowed reports whether role may call the gRPC method fullMethod
// ("/mcpmesh.v1.RegistryService/GetStatus"). Unknown methods are denied.
func Allowed(role mcpmeshv1.Role, fullMethod string) bool {
	for _, r := range rules[fullMethod] {
		if r == role {
			return true
		}
	}
	return false
}

// HasRule reports whether fullMethod has a role rule at all.
func HasRule(fullMethod string) bool {
	_, ok := rules[fullMethod]
	return ok
}
