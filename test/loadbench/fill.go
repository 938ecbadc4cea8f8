package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
					{fillAzureCluster(ns, name), azureClusterStatus()},
					{fillCluster(ns, name), clusterStatus()},
					{fillMachineDeployment(ns, name), machineDeploymentStatus()},
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

func fillMeta(ns, name, cluster string, extraLabels map[string]any) map[string]any {
	labels := map[string]any{
		"cluster.x-k8s.io/cluster-name":   cluster,
		"topology.cluster.x-k8s.io/owned": "",
		"app.kubernetes.io/part-of":       "fleet",
		"example.com/cost-center":         "cc-4711",
		"example.com/environment":         "production",
	}
	for k, v := range extraLabels {
		labels[k] = v
	}
	return map[string]any{"name": name, "namespace": ns, "labels": labels,
		"annotations": map[string]any{
			"example.com/owner":                 "platform-team@example.com",
			"example.com/change-ticket":         "CHG0012345",
			"cluster.x-k8s.io/cloned-from-name": "azure-clusterclass-v1.3.2",
			"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"cluster.x-k8s.io/v1beta2","kind":"Cluster","metadata":{"annotations":{},"name":"` + name +
				`","namespace":"` + ns + `"},"spec":{"topology":{"classRef":{"name":"azure-clusterclass-v1.3.2"},"version":"v1.33.4","workers":{"machineDeployments":[{"class":"default-worker","name":"md-0","replicas":3}]}}}}`,
		}}
}

func fillCluster(ns, name string) map[string]any {
	return map[string]any{
		"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
		"metadata": fillMeta(ns, name, name, map[string]any{"cluster.x-k8s.io/cluster-name": name}),
		"spec": map[string]any{
			"clusterNetwork": map[string]any{
				"pods":          map[string]any{"cidrBlocks": []any{"192.168.0.0/16"}},
				"services":      map[string]any{"cidrBlocks": []any{"10.128.0.0/12"}},
				"serviceDomain": "cluster.local",
			},
			"controlPlaneEndpoint": map[string]any{"host": name + "-a1b2c3.eastus.cloudapp.azure.com", "port": int64(6443)},
			"controlPlaneRef":      map[string]any{"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": name + "-cp"},
			"infrastructureRef":    map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AzureCluster", "name": name},
			"topology": map[string]any{
				"classRef": map[string]any{"name": "azure-clusterclass-v1.3.2"},
				"version":  "v1.33.4",
				"controlPlane": map[string]any{"replicas": int64(3),
					"metadata": map[string]any{"labels": map[string]any{"example.com/role": "control-plane"}}},
				"workers": map[string]any{"machineDeployments": []any{
					map[string]any{"class": "default-worker", "name": "md-0", "replicas": int64(3),
						"metadata": map[string]any{"labels": map[string]any{"example.com/pool": "general"}}},
					map[string]any{"class": "default-worker", "name": "md-1", "replicas": int64(2), "failureDomain": "2"},
				}},
				"variables": []any{
					map[string]any{"name": "subscriptionID", "value": "00000000-0000-0000-0000-000000000000"},
					map[string]any{"name": "location", "value": "eastus"},
					map[string]any{"name": "resourceGroup", "value": "rg-" + name},
					map[string]any{"name": "controlPlaneMachineType", "value": "Standard_D4s_v3"},
					map[string]any{"name": "workerMachineType", "value": "Standard_D8s_v3"},
					map[string]any{"name": "sshPublicKey", "value": "c3NoLXJzYSBBQUFBQjNOemFDMXljMkVBQUFBREFRQUJBQUFCZ1FDN2V4YW1wbGVrZXlleGFtcGxla2V5ZXhhbXBsZWtleQ=="},
					map[string]any{"name": "identityRef", "value": map[string]any{"kind": "AzureClusterIdentity", "name": "cluster-identity"}},
				},
			},
		},
	}
}

func fillAzureCluster(ns, name string) map[string]any {
	rules := []any{}
	for i, r := range []struct{ name, port string }{{"allow_ssh", "22"}, {"allow_apiserver", "6443"}, {"allow_etcd", "2379-2380"}} {
		rules = append(rules, map[string]any{"name": r.name, "description": "Allow " + r.name, "protocol": "Tcp", "direction": "Inbound",
			"priority": int64(2200 + i), "sourcePorts": "*", "destinationPorts": r.port, "source": "*", "destination": "*", "action": "Allow"})
	}
	return map[string]any{
		"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureCluster",
		"metadata": fillMeta(ns, name, name, nil),
		"spec": map[string]any{
			"location":             "eastus",
			"resourceGroup":        "rg-" + name,
			"subscriptionID":       "00000000-0000-0000-0000-000000000000",
			"azureEnvironment":     "AzurePublicCloud",
			"identityRef":          map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureClusterIdentity", "name": "cluster-identity", "namespace": ns},
			"controlPlaneEndpoint": map[string]any{"host": name + "-a1b2c3.eastus.cloudapp.azure.com", "port": int64(6443)},
			"additionalTags":       map[string]any{"cost-center": "cc-4711", "environment": "production", "owner": "platform-team"},
			"networkSpec": map[string]any{
				"vnet": map[string]any{"name": name + "-vnet", "resourceGroup": "rg-" + name, "cidrBlocks": []any{"10.0.0.0/8"},
					"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-" + name + "/providers/Microsoft.Network/virtualNetworks/" + name + "-vnet"},
				"subnets": []any{
					map[string]any{"name": name + "-controlplane-subnet", "role": "control-plane", "cidrBlocks": []any{"10.0.0.0/16"},
						"securityGroup": map[string]any{"name": name + "-controlplane-nsg", "securityRules": rules}},
					map[string]any{"name": name + "-node-subnet", "role": "node", "cidrBlocks": []any{"10.1.0.0/16"},
						"securityGroup": map[string]any{"name": name + "-node-nsg"},
						"routeTable":    map[string]any{"name": name + "-node-routetable"},
						"natGateway":    map[string]any{"name": name + "-node-natgw", "ip": map[string]any{"name": "pip-" + name + "-node-natgw"}}},
				},
				"apiServerLB": map[string]any{"name": name + "-public-lb", "type": "Public", "sku": "Standard", "idleTimeoutInMinutes": int64(4),
					"frontendIPs": []any{map[string]any{"name": name + "-public-lb-frontEnd", "publicIP": map[string]any{"name": "pip-" + name + "-apiserver", "dnsName": name + "-a1b2c3.eastus.cloudapp.azure.com"}}}},
			},
		},
	}
}

func fillMachineDeployment(ns, name string) map[string]any {
	md := name + "-md-0"
	return map[string]any{
		"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
		"metadata": fillMeta(ns, md, name, map[string]any{"topology.cluster.x-k8s.io/deployment-name": "md-0"}),
		"spec": map[string]any{
			"clusterName": name,
			"replicas":    int64(3),
			"selector": map[string]any{"matchLabels": map[string]any{"cluster.x-k8s.io/cluster-name": name,
				"topology.cluster.x-k8s.io/deployment-name": "md-0", "topology.cluster.x-k8s.io/owned": ""}},
			"rollout": map[string]any{"strategy": map[string]any{"type": "RollingUpdate",
				"rollingUpdate": map[string]any{"maxSurge": int64(1), "maxUnavailable": int64(0)}}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"cluster.x-k8s.io/cluster-name": name,
					"topology.cluster.x-k8s.io/deployment-name": "md-0", "topology.cluster.x-k8s.io/owned": "", "example.com/pool": "general"}},
				"spec": map[string]any{
					"clusterName":       name,
					"version":           "v1.33.4",
					"failureDomain":     "1",
					"bootstrap":         map[string]any{"configRef": map[string]any{"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfigTemplate", "name": md + "-bootstrap-x7k2p"}},
					"infrastructureRef": map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AzureMachineTemplate", "name": md + "-infra-q9w8e"},
				},
			},
		},
	}
}

// conditions is what a controller's status carries: a handful of conditions, each with a reason,
// a message and a transition time.
func conditions(v1beta2 bool, types ...string) []any {
	out := make([]any, 0, len(types))
	for _, t := range types {
		c := map[string]any{"type": t, "status": "True", "lastTransitionTime": "2026-01-15T10:04:05Z", "reason": "Ready",
			"message": ""}
		if v1beta2 {
			c["observedGeneration"] = int64(2)
			c["reason"] = t
		} else {
			c["severity"] = ""
			delete(c, "message")
		}
		out = append(out, c)
	}
	return out
}

func clusterStatus() map[string]any {
	return map[string]any{
		"phase":              "Provisioned",
		"observedGeneration": int64(2),
		"initialization":     map[string]any{"infrastructureProvisioned": true, "controlPlaneInitialized": true},
		"controlPlane":       map[string]any{"desiredReplicas": int64(3), "replicas": int64(3), "readyReplicas": int64(3), "availableReplicas": int64(3), "upToDateReplicas": int64(3)},
		"workers":            map[string]any{"desiredReplicas": int64(5), "replicas": int64(5), "readyReplicas": int64(5), "availableReplicas": int64(5), "upToDateReplicas": int64(5)},
		"failureDomains": []any{
			map[string]any{"name": "1", "controlPlane": true}, map[string]any{"name": "2", "controlPlane": true}, map[string]any{"name": "3", "controlPlane": true},
		},
		"conditions": conditions(true, "Available", "InfrastructureReady", "ControlPlaneAvailable", "ControlPlaneInitialized",
			"WorkersAvailable", "RemoteConnectionProbe", "TopologyReconciled", "MachinesReady", "MachinesUpToDate", "Paused", "Deleting"),
		"deprecated": map[string]any{"v1beta1": map[string]any{"conditions": conditions(false, "Ready", "ControlPlaneInitialized", "ControlPlaneReady", "InfrastructureReady", "TopologyReconciled")}},
	}
}

func azureClusterStatus() map[string]any {
	return map[string]any{
		"ready": true,
		"failureDomains": map[string]any{
			"1": map[string]any{"controlPlane": true}, "2": map[string]any{"controlPlane": true}, "3": map[string]any{"controlPlane": true},
		},
		"conditions": conditions(false, "Ready", "NetworkInfrastructureReady", "ResourceGroupReady", "VNetReady", "SubnetsReady",
			"SecurityGroupsReady", "RouteTablesReady", "LoadBalancersReady", "PublicIPsReady", "NATGatewaysReady", "PrivateDNSReady"),
	}
}

func machineDeploymentStatus() map[string]any {
	return map[string]any{
		"phase":              "Running",
		"observedGeneration": int64(2),
		"selector":           "cluster.x-k8s.io/cluster-name=wl,topology.cluster.x-k8s.io/deployment-name=md-0,topology.cluster.x-k8s.io/owned=",
		"replicas":           int64(3), "readyReplicas": int64(3), "availableReplicas": int64(3), "upToDateReplicas": int64(3),
		"conditions": conditions(true, "Available", "MachinesReady", "MachinesUpToDate", "ScalingUp", "ScalingDown", "Remediating",
			"RollingOut", "Paused", "Deleting"),
		"deprecated": map[string]any{"v1beta1": map[string]any{"readyReplicas": int64(3), "availableReplicas": int64(3), "updatedReplicas": int64(3),
			"unavailableReplicas": int64(0),
			"conditions":          conditions(false, "Ready", "Available", "MachineSetReady")}},
	}
}

func clientKey(namespace, name string) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace, Name: name}
}
