package capzflavors

import "encoding/base64"

// TestSubscriptionID is the Azure subscription every flavor is rendered into by DefaultVars. It is
// the one test/e2e's policy allows DES IDs from, so rendered flavors and that policy fit together.
const TestSubscriptionID = "6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90"

// TestSSHPublicKey is a public key generated for these tests (its private half was discarded).
const TestSSHPublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ4gScMvgquUcNEfFOvtjIMu52u8RpwDQ+JYwULy9gQk capz-flavors-test"

// OverriddenTemplateDefaults are the variables DefaultVars sets although the templates default
// them, each with the reason: a template default that the CRDs reject would keep a flavor from
// being applied at all.
var OverriddenTemplateDefaults = map[string]string{
	"AZURE_SSH_PUBLIC_KEY": `the Windows flavors put it into KubeadmConfig(Template) users[].sshAuthorizedKeys, whose items ` +
		`CAPI's CRD requires to be non-empty, so the template default "" fails to apply`,
	"AZURE_SSH_PUBLIC_KEY_B64": "the same key, as CAPZ's docs export both (development.md); the Linux machines get it",
}

// Machine sizes DefaultVars gives the two template variables that have no default in any flavor.
// CAPZ's docs use Standard_D2s_v3; the worker size differs from the control plane's so that a table
// of results shows which template got which. Both are in the shared VM-size catalog for eastus and
// southcentralus (see the README for their capabilities).
const (
	ControlPlaneMachineType = "Standard_D2s_v3"
	NodeMachineType         = "Standard_D4s_v3"
)

// DefaultVars returns a value for every variable that some CAPZ flavor needs and gives no default
// for, as a user would export them before `clusterctl generate cluster` (the values follow CAPZ's
// docs and its e2e config, test/e2e/config/azure-dev.yaml). Variables that the templates default
// (resource group, VNet name, identity type, ...) are left to the templates, except
// OverriddenTemplateDefaults.
//
// CLUSTER_NAME and NAMESPACE are derived from the region; a test that applies several flavors to one
// apiserver should give each its own NAMESPACE, since flavors reuse object names.
func DefaultVars(region string) map[string]string {
	return map[string]string{
		// Set by clusterctl itself from its argument and flags.
		VarClusterName:              "capz-" + region,
		VarNamespace:                "capz-" + region,
		VarKubernetesVersion:        "v1.35.0",
		VarControlPlaneMachineCount: "1",
		VarWorkerMachineCount:       "2",

		"AZURE_LOCATION":                         region,
		"AZURE_SUBSCRIPTION_ID":                  TestSubscriptionID,
		"AZURE_TENANT_ID":                        "3b1e5f2a-7c4d-4e8f-9a6b-1d2c3e4f5a6b",
		"AZURE_CLIENT_ID":                        "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
		"AZURE_CLIENT_ID_USER_ASSIGNED_IDENTITY": "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
		"AZURE_SERVER_APP_ID":                    "2e4f6a8c-0b1d-4f3e-a5c7-9e1b3d5f7a9c",
		"CLUSTER_IDENTITY_NAME":                  "cluster-identity",
		// private-link authenticates with a client secret; CAPZ's docs name it so.
		"AZURE_CLUSTER_IDENTITY_SECRET_NAME":      "cluster-identity-secret",
		"AZURE_CLUSTER_IDENTITY_SECRET_NAMESPACE": "default",
		"ASO_CREDENTIAL_SECRET_NAME":              "aso-credentials",
		"AZURE_CONTROL_PLANE_MACHINE_TYPE":        ControlPlaneMachineType,
		"AZURE_NODE_MACHINE_TYPE":                 NodeMachineType,
		// The ClusterClass flavors define a class of this name; the topology flavors use it.
		"CLUSTER_CLASS_NAME": "capz-default",
		// apiserver-ilb flavors: the API server's DNS name is CLUSTER_NAME-SUFFIX.REGION.cloudapp.azure.com.
		"APISERVER_LB_DNS_SUFFIX": "ew7k2p",
		// edgezone: CAPZ's e2e default.
		"AZURE_EXTENDEDLOCATION_TYPE": "EdgeZone",
		"AZURE_EXTENDEDLOCATION_NAME": "microsoftvancouver1",
		// flatcar flavors: the marketplace image version; Azure accepts "latest", as CAPZ's e2e uses.
		"FLATCAR_VERSION": "latest",
		// As CAPZ's docs export them: the .pub file as it is, and base64 of the whole file.
		"AZURE_SSH_PUBLIC_KEY":     TestSSHPublicKey,
		"AZURE_SSH_PUBLIC_KEY_B64": base64.StdEncoding.EncodeToString([]byte(TestSSHPublicKey + "\n")),
	}
}
