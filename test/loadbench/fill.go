package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// fillNamespaces is how many namespaces -fill spreads its clusters over.
const fillNamespaces = 8

// fill creates n Clusters, n AzureClusters and n MachineDeployments, as CAPI's and CAPZ's
// controllers store them (labels, annotations, a full spec, and the status the controllers write,
// through the status subresource), spread over fillNamespaces namespaces: what the webhook's
// informers list when it starts in a management cluster of n workload clusters.
func (e *env) fill(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	for i := range fillNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fleet-%d", i),
			Labels: map[string]string{"team": fmt.Sprintf("team-%d", i), "environment": "production"}}}
		if err := e.k8s.Create(ctx, ns); err != nil {
			return err
		}
	}
	start := time.Now()
	var next, done atomic.Int64
	errs := make(chan error, fillClients)
	var wg sync.WaitGroup
	for range fillClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ns, name := fmt.Sprintf("fleet-%d", i%fillNamespaces), fmt.Sprintf("wl-%05d", i)
				for _, o := range []struct{ obj, status map[string]any }{
					{fillAzureCluster(ns, name), azureClusterStatus(ns, name)},
					{fillCluster(ns, name), clusterStatus(ns, name)},
					{fillMachineDeployment(ns, name), machineDeploymentStatus(ns, name)},
				} {
					u := &unstructured.Unstructured{Object: o.obj}
					if err := e.k8s.Create(ctx, u); err != nil {
						errs <- fmt.Errorf("fill: %s %s/%s: %w", u.GetKind(), ns, u.GetName(), err)
						return
					}
					u.Object["status"] = o.status
					if err := e.k8s.Status().Update(ctx, u); err != nil {
						errs <- fmt.Errorf("fill: status of %s %s/%s: %w", u.GetKind(), ns, u.GetName(), err)
						return
					}
				}
				if d := done.Add(1); d%2000 == 0 {
					fmt.Fprintf(os.Stderr, "loadbench: fill: %d of %d clusters (%.0fs)\n", d, n, time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	size, err := e.storedSize(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "loadbench: fill: %d Clusters, AzureClusters and MachineDeployments in %.1fs; %s\n", n, time.Since(start).Seconds(), size)
	return nil
}

// fillClients are the concurrent clients of -fill: the apiserver, not the client, must be what
// limits it.
const fillClients = 32

// storedSize reports the JSON size of one stored object of each kind, managed fields included, as
// an informer receives it.
func (e *env) storedSize(ctx context.Context) (string, error) {
	out := ""
	for _, k := range []struct{ apiVersion, kind, name string }{
		{"cluster.x-k8s.io/v1beta2", "Cluster", "wl-00000"},
		{"infrastructure.cluster.x-k8s.io/v1beta1", "AzureCluster", "wl-00000"},
		{"cluster.x-k8s.io/v1beta2", "MachineDeployment", "wl-00000-md-0"},
	} {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(k.apiVersion)
		u.SetKind(k.kind)
		if err := e.k8s.Get(ctx, clientKey("fleet-0", k.name), u); err != nil {
			return "", err
		}
		b, err := u.MarshalJSON()
		if err != nil {
			return "", err
		}
		out += fmt.Sprintf("%s %.1f KiB ", k.kind, float64(len(b))/1024)
	}
	return "stored sizes: " + out, nil
}

// The objects of -fill, as CAPI's and CAPZ's controllers store them; ${NS}, ${NAME} and ${CLUSTER}
// are replaced.
const (
	fillMetaYAML = `
name: ${NAME}
namespace: ${NS}
labels:
  cluster.x-k8s.io/cluster-name: ${CLUSTER}
  topology.cluster.x-k8s.io/owned: ""
  app.kubernetes.io/part-of: fleet
  example.com/cost-center: cc-4711
  example.com/environment: production
annotations:
  example.com/owner: platform-team@example.com
  example.com/change-ticket: CHG0012345
  cluster.x-k8s.io/cloned-from-name: azure-clusterclass-v1.3.2
  kubectl.kubernetes.io/last-applied-configuration: '{"apiVersion":"cluster.x-k8s.io/v1beta2","kind":"Cluster","metadata":{"annotations":{},"name":"${NAME}","namespace":"${NS}"},"spec":{"topology":{"classRef":{"name":"azure-clusterclass-v1.3.2"},"version":"v1.33.4","workers":{"machineDeployments":[{"class":"default-worker","name":"md-0","replicas":3}]}}}}'
`

	fillClusterYAML = `
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
spec:
  clusterNetwork:
    pods: {cidrBlocks: [192.168.0.0/16]}
    services: {cidrBlocks: [10.128.0.0/12]}
    serviceDomain: cluster.local
  controlPlaneEndpoint: {host: ${NAME}-a1b2c3.eastus.cloudapp.azure.com, port: 6443}
  controlPlaneRef: {apiGroup: controlplane.cluster.x-k8s.io, kind: KubeadmControlPlane, name: ${NAME}-cp}
  infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: AzureCluster, name: ${NAME}}
  topology:
    classRef: {name: azure-clusterclass-v1.3.2}
    version: v1.33.4
    controlPlane:
      replicas: 3
      metadata: {labels: {example.com/role: control-plane}}
    workers:
      machineDeployments:
      - {class: default-worker, name: md-0, replicas: 3, metadata: {labels: {example.com/pool: general}}}
      - {class: default-worker, name: md-1, replicas: 2, failureDomain: "2"}
    variables:
    - {name: subscriptionID, value: 00000000-0000-0000-0000-000000000000}
    - {name: location, value: eastus}
    - {name: resourceGroup, value: rg-${NAME}}
    - {name: controlPlaneMachineType, value: Standard_D4s_v3}
    - {name: workerMachineType, value: Standard_D8s_v3}
    - {name: sshPublicKey, value: c3NoLXJzYSBBQUFBQjNOemFDMXljMkVBQUFBREFRQUJBQUFCZ1FDN2V4YW1wbGVrZXlleGFtcGxla2V5ZXhhbXBsZWtleQ==}
    - {name: identityRef, value: {kind: AzureClusterIdentity, name: cluster-identity}}
`

	fillClusterStatusYAML = `
phase: Provisioned
observedGeneration: 2
initialization: {infrastructureProvisioned: true, controlPlaneInitialized: true}
controlPlane: {desiredReplicas: 3, replicas: 3, readyReplicas: 3, availableReplicas: 3, upToDateReplicas: 3}
workers: {desiredReplicas: 5, replicas: 5, readyReplicas: 5, availableReplicas: 5, upToDateReplicas: 5}
failureDomains: [{name: "1", controlPlane: true}, {name: "2", controlPlane: true}, {name: "3", controlPlane: true}]
conditions: V1BETA2(Available InfrastructureReady ControlPlaneAvailable ControlPlaneInitialized WorkersAvailable RemoteConnectionProbe TopologyReconciled MachinesReady MachinesUpToDate Paused Deleting)
deprecated:
  v1beta1:
    conditions: V1BETA1(Ready ControlPlaneInitialized ControlPlaneReady InfrastructureReady TopologyReconciled)
`

	fillAzureClusterYAML = `
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureCluster
spec:
  location: eastus
  resourceGroup: rg-${NAME}
  subscriptionID: 00000000-0000-0000-0000-000000000000
  azureEnvironment: AzurePublicCloud
  identityRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: AzureClusterIdentity, name: cluster-identity, namespace: ${NS}}
  controlPlaneEndpoint: {host: ${NAME}-a1b2c3.eastus.cloudapp.azure.com, port: 6443}
  additionalTags: {cost-center: cc-4711, environment: production, owner: platform-team}
  networkSpec:
    vnet:
      name: ${NAME}-vnet
      resourceGroup: rg-${NAME}
      cidrBlocks: [10.0.0.0/8]
      id: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-${NAME}/providers/Microsoft.Network/virtualNetworks/${NAME}-vnet
    subnets:
    - name: ${NAME}-controlplane-subnet
      role: control-plane
      cidrBlocks: [10.0.0.0/16]
      securityGroup:
        name: ${NAME}-controlplane-nsg
        securityRules:
        - {name: allow_ssh, description: Allow SSH, protocol: Tcp, direction: Inbound, priority: 2200, sourcePorts: "*", destinationPorts: "22", source: "*", destination: "*", action: Allow}
        - {name: allow_apiserver, description: Allow the API server, protocol: Tcp, direction: Inbound, priority: 2201, sourcePorts: "*", destinationPorts: "6443", source: "*", destination: "*", action: Allow}
        - {name: allow_etcd, description: Allow etcd, protocol: Tcp, direction: Inbound, priority: 2202, sourcePorts: "*", destinationPorts: "2379-2380", source: "*", destination: "*", action: Allow}
    - name: ${NAME}-node-subnet
      role: node
      cidrBlocks: [10.1.0.0/16]
      securityGroup: {name: ${NAME}-node-nsg}
      routeTable: {name: ${NAME}-node-routetable}
      natGateway: {name: ${NAME}-node-natgw, ip: {name: pip-${NAME}-node-natgw}}
    apiServerLB:
      name: ${NAME}-public-lb
      type: Public
      sku: Standard
      idleTimeoutInMinutes: 4
      frontendIPs: [{name: ${NAME}-public-lb-frontEnd, publicIP: {name: pip-${NAME}-apiserver, dnsName: ${NAME}-a1b2c3.eastus.cloudapp.azure.com}}]
`

	fillAzureClusterStatusYAML = `
ready: true
failureDomains: {"1": {controlPlane: true}, "2": {controlPlane: true}, "3": {controlPlane: true}}
conditions: V1BETA1(Ready NetworkInfrastructureReady ResourceGroupReady VNetReady SubnetsReady SecurityGroupsReady RouteTablesReady LoadBalancersReady PublicIPsReady NATGatewaysReady PrivateDNSReady)
`

	fillMachineDeploymentYAML = `
apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
spec:
  clusterName: ${CLUSTER}
  replicas: 3
  selector:
    matchLabels: {cluster.x-k8s.io/cluster-name: ${CLUSTER}, topology.cluster.x-k8s.io/deployment-name: md-0, topology.cluster.x-k8s.io/owned: ""}
  rollout:
    strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata:
      labels: {cluster.x-k8s.io/cluster-name: ${CLUSTER}, topology.cluster.x-k8s.io/deployment-name: md-0, topology.cluster.x-k8s.io/owned: "", example.com/pool: general}
    spec:
      clusterName: ${CLUSTER}
      version: v1.33.4
      failureDomain: "1"
      bootstrap: {configRef: {apiGroup: bootstrap.cluster.x-k8s.io, kind: KubeadmConfigTemplate, name: ${NAME}-bootstrap-x7k2p}}
      infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: AzureMachineTemplate, name: ${NAME}-infra-q9w8e}
`

	fillMachineDeploymentStatusYAML = `
phase: Running
observedGeneration: 2
selector: cluster.x-k8s.io/cluster-name=${CLUSTER},topology.cluster.x-k8s.io/deployment-name=md-0,topology.cluster.x-k8s.io/owned=
replicas: 3
readyReplicas: 3
availableReplicas: 3
upToDateReplicas: 3
conditions: V1BETA2(Available MachinesReady MachinesUpToDate ScalingUp ScalingDown Remediating RollingOut Paused Deleting)
deprecated:
  v1beta1:
    readyReplicas: 3
    availableReplicas: 3
    updatedReplicas: 3
    unavailableReplicas: 0
    conditions: V1BETA1(Ready Available MachineSetReady)
`
)

// conditionsRE finds the V1BETA1(...) and V1BETA2(...) placeholders of the status templates.
var conditionsRE = regexp.MustCompile(`V1BETA([12])\(([^)]*)\)`)

// conditions is what a controller's status carries: a handful of conditions, each with a reason,
// a transition time and, in v1beta2, a message and the generation observed.
func conditions(version string, types []string) string {
	items := make([]string, 0, len(types))
	for _, t := range types {
		if version == "2" {
			items = append(items, fmt.Sprintf(`{type: %s, status: "True", observedGeneration: 2, lastTransitionTime: "2026-01-15T10:04:05Z", reason: %s, message: ""}`, t, t))
		} else {
			items = append(items, fmt.Sprintf(`{type: %s, status: "True", severity: "", lastTransitionTime: "2026-01-15T10:04:05Z", reason: Ready}`, t))
		}
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// render fills a template in for cluster name in namespace ns (object name: name).
func render(tpl, ns, name, cluster string) map[string]any {
	doc := conditionsRE.ReplaceAllStringFunc(tpl, func(m string) string {
		sub := conditionsRE.FindStringSubmatch(m)
		return conditions(sub[1], strings.Fields(sub[2]))
	})
	doc = strings.NewReplacer("${CLUSTER}", cluster, "${NAME}", name, "${NS}", ns).Replace(doc)
	var out map[string]any
	if err := yaml.Unmarshal([]byte(doc), &out); err != nil {
		panic(fmt.Sprintf("loadbench: a fill template does not parse: %v", err))
	}
	return out
}

func fillObject(spec, ns, name, cluster string) map[string]any {
	o := render(spec, ns, name, cluster)
	o["metadata"] = render(fillMetaYAML, ns, name, cluster)
	return o
}

func fillCluster(ns, name string) map[string]any { return fillObject(fillClusterYAML, ns, name, name) }

func fillAzureCluster(ns, name string) map[string]any {
	return fillObject(fillAzureClusterYAML, ns, name, name)
}

func fillMachineDeployment(ns, name string) map[string]any {
	return fillObject(fillMachineDeploymentYAML, ns, name+"-md-0", name)
}

func clusterStatus(ns, name string) map[string]any {
	return render(fillClusterStatusYAML, ns, name, name)
}

func azureClusterStatus(ns, name string) map[string]any {
	return render(fillAzureClusterStatusYAML, ns, name, name)
}

func machineDeploymentStatus(ns, name string) map[string]any {
	return render(fillMachineDeploymentStatusYAML, ns, name+"-md-0", name)
}

func clientKey(namespace, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: name}
}
