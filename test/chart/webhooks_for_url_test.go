package chart_test

import (
	"reflect"
	"testing"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// TestWebhooksForURL covers the helper the e2e suite uses to install the chart's webhook
// configurations against a webhook server running in the test process: only clientConfig changes.
func TestWebhooksForURL(t *testing.T) {
	helm := helmPath(t)
	ca := testsupport.CAPEM()
	m, v, err := chart.WebhooksForURL(helm, "e2e-system", "https://127.0.0.1:9443/", ca, scenarioArgs(t, "match-conditions")...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := chart.Render(chart.Options{Helm: helm, Namespace: "e2e-system", Args: scenarioArgs(t, "match-conditions")})
	if err != nil {
		t.Fatal(err)
	}
	m0, v0, err := chart.Webhooks(objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path        string
		url         *string
		caBundle    []byte
		got, want   any
		annotations map[string]string
	}{
		{"/mutate", m.Webhooks[0].ClientConfig.URL, m.Webhooks[0].ClientConfig.CABundle, m.Webhooks[0].Rules, m0.Webhooks[0].Rules, m.Annotations},
		{"/validate", v.Webhooks[0].ClientConfig.URL, v.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].Rules, v0.Webhooks[0].Rules, v.Annotations},
	} {
		if c.url == nil || *c.url != "https://127.0.0.1:9443"+c.path {
			t.Errorf("%s: url = %v", c.path, c.url)
		}
		if string(c.caBundle) != string(ca) {
			t.Errorf("%s: caBundle not set", c.path)
		}
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: rules changed: %+v", c.path, c.got)
		}
		if _, ok := c.annotations["cert-manager.io/inject-ca-from"]; ok {
			t.Errorf("%s: inject-ca-from kept", c.path)
		}
	}
	if len(v.Webhooks) != 3 || v.Webhooks[2].ClientConfig.URL == nil || *v.Webhooks[2].ClientConfig.URL != "https://127.0.0.1:9443/validate-binding" {
		t.Errorf("binding webhook: %+v", v.Webhooks)
	}
	// Everything but clientConfig is the chart's.
	if u := v.Webhooks[1].ClientConfig.URL; u == nil || *u != "https://127.0.0.1:9443/validate-policy" {
		t.Errorf("policy check url = %v", u)
	}
	m0.Webhooks[0].ClientConfig = m.Webhooks[0].ClientConfig
	for i := range v0.Webhooks {
		v0.Webhooks[i].ClientConfig = v.Webhooks[i].ClientConfig
	}
	if !reflect.DeepEqual(m.Webhooks, m0.Webhooks) || !reflect.DeepEqual(v.Webhooks, v0.Webhooks) {
		t.Error("WebhooksForURL changed more than clientConfig")
	}
	if len(v.Webhooks[0].MatchConditions) != 3 {
		t.Error("helm args not applied")
	}
}
