// Package testsupport holds what the project's tests share: the test subscription and Disk
// Encryption Set IDs, a throw-away certificate authority for serving certificates, and the
// AdmissionReview as the apiserver posts it. It is imported by tests only.
package testsupport

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Subscriptions the tests use: one the policies allow, one they do not.
const (
	Subscription      = "6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90"
	OtherSubscription = "0b7d1e2f-aaaa-4bbb-8ccc-1234567890ab"
)

// DESID is the ID of Disk Encryption Set name in resource group rg of the test subscription.
func DESID(rg, name string) string {
	return "/subscriptions/" + Subscription + "/resourceGroups/" + rg + "/providers/Microsoft.Compute/diskEncryptionSets/" + name
}

// --- certificates ----------------------------------------------------------------------------------

// CA is a throw-away certificate authority that writes serving certificates into a directory as
// tls.crt and tls.key, the way kubelet's Secret volumes hold them.
type CA struct {
	Dir   string
	PEM   []byte
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	mu    sync.Mutex
	count int64
}

// NewCA makes a CA and a first serving certificate (for 127.0.0.1 and localhost) in dir.
func NewCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := newCA("capz-encryption-webhook test CA")
	if err != nil {
		return nil, err
	}
	ca.Dir = dir
	_, err = ca.IssueServing()
	return ca, err
}

func newCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert: cert, key: key, count: 1}, nil
}

var (
	sharedCAOnce sync.Once
	sharedCAPEM  []byte
)

// CAPEM is the PEM of a CA certificate made once per process, for tests that only need a caBundle.
func CAPEM() []byte {
	sharedCAOnce.Do(func() {
		ca, err := newCA("capz-encryption-webhook test CA")
		if err != nil {
			panic(err)
		}
		sharedCAPEM = ca.PEM
	})
	return sharedCAPEM
}

// IssueServing writes a new serving certificate and key (new key, same CA) into Dir and returns its
// serial. The files are replaced by rename, as kubelet's Secret volumes do.
func (ca *CA) IssueServing() (*big.Int, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca.count++
	serial := big.NewInt(ca.count)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "capz-encryption-webhook"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	} {
		tmp := filepath.Join(ca.Dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, filepath.Join(ca.Dir, name)); err != nil {
			return nil, err
		}
	}
	return serial, nil
}

// ClientTLS trusts this CA only.
func (ca *CA) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// ServedSerial dials addr and returns the serial of the certificate it presents.
func (ca *CA) ServedSerial(addr string) (*big.Int, error) {
	conn, err := tls.Dial("tcp", addr, ca.ClientTLS())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// --- admission reviews ------------------------------------------------------------------------------

// Review describes one admission request as the apiserver sends it.
type Review struct {
	UID       string
	Operation admissionv1.Operation
	// Group, Version, Kind and Resource of the object; Group defaults to CAPZ's, Version to v1beta1.
	Group, Version, Kind, Resource string
	Namespace, Name                string
	Object, OldObject              any // marshalled to JSON; nil for none
	DryRun                         bool
}

// Body is the AdmissionReview JSON the apiserver would POST.
func (r Review) Body() ([]byte, error) {
	raw := func(v any) (runtime.RawExtension, error) {
		if v == nil {
			return runtime.RawExtension{}, nil
		}
		b, err := json.Marshal(v)
		return runtime.RawExtension{Raw: b}, err
	}
	obj, err := raw(r.Object)
	if err != nil {
		return nil, err
	}
	old, err := raw(r.OldObject)
	if err != nil {
		return nil, err
	}
	group, version := r.Group, r.Version
	if group == "" {
		group = "infrastructure.cluster.x-k8s.io"
	}
	if version == "" {
		version = "v1beta1"
	}
	op := r.Operation
	if op == "" {
		op = admissionv1.Create
	}
	dry := r.DryRun
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:      types.UID(r.UID),
			Kind:     metav1.GroupVersionKind{Group: group, Version: version, Kind: r.Kind},
			Resource: metav1.GroupVersionResource{Group: group, Version: version, Resource: r.Resource},
			Name:     r.Name, Namespace: r.Namespace, Operation: op,
			UserInfo: authenticationv1.UserInfo{Username: "test"},
			Object:   obj, OldObject: old, DryRun: &dry,
		},
	})
}

// Post sends the review to url and decodes the answer.
func (r Review) Post(c *http.Client, url string) (*admissionv1.AdmissionResponse, error) {
	body, err := r.Body()
	if err != nil {
		return nil, err
	}
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decodeResponse(resp)
}

// ReadResponse reads an HTTP response carrying an AdmissionReview from a raw connection.
func ReadResponse(r io.Reader) (*admissionv1.AdmissionResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(r), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decodeResponse(resp)
}

func decodeResponse(resp *http.Response) (*admissionv1.AdmissionResponse, error) {
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		return nil, err
	}
	if review.Response == nil {
		return nil, fmt.Errorf("no response in the AdmissionReview")
	}
	return review.Response, nil
}

// --- logs --------------------------------------------------------------------------------------------

// LogLines collects what a logger writes, one JSON object per line, for tests that read the log.
type LogLines struct {
	mu    sync.Mutex
	lines []string
}

// Logger writes JSON lines (funcr's format) into l.
func (l *LogLines) Logger() logr.Logger {
	return funcr.NewJSON(func(obj string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, obj)
	}, funcr.Options{})
}

// Lines returns a copy of the lines so far.
func (l *LogLines) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
