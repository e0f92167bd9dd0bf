package secrets

import (
	"encoding/base64"
	"fmt"
)

// Fill is one value a bundle sets in a machine config's v1alpha1
// document: Path is the key path (machine, ca, crt), Value the string it
// gets, and Field the bundle field it comes from (certs.os.crt), for
// messages; it is "" for a value the bundle does not hold (the empty key
// of a worker's CA).
type Fill struct {
	Path  []string
	Value string
	Field string
}

// Paths returns every key path of the v1alpha1 document that holds a
// cluster secret or a CA a bundle provides, for any machine type. A config
// that carries one of them while a bundle is present is reported.
func Paths() [][]string {
	return [][]string{
		{"machine", "token"},
		{"machine", "ca", "crt"},
		{"machine", "ca", "key"},
		{"cluster", "id"},
		{"cluster", "secret"},
		{"cluster", "token"},
		{"cluster", "secretboxEncryptionSecret"},
		{"cluster", "aescbcEncryptionSecret"},
		{"cluster", "ca", "crt"},
		{"cluster", "ca", "key"},
		{"cluster", "aggregatorCA", "crt"},
		{"cluster", "aggregatorCA", "key"},
		{"cluster", "serviceAccount", "key"},
		{"cluster", "etcd", "ca", "crt"},
		{"cluster", "etcd", "ca", "key"},
	}
}

// Fills returns the values the bundle gives a machine of machineType
// (controlplane, init or worker), as talosctl gen config does in Talos'
// v1alpha1 document (up to v1.13):
//
//   - every type: machine.token (trustd token), machine.ca.crt (Talos API
//     CA), cluster.id, cluster.secret, cluster.token (bootstrap token),
//     cluster.ca.crt (Kubernetes CA);
//   - controlplane and init: also machine.ca.key, cluster.ca.key,
//     cluster.aggregatorCA, cluster.serviceAccount.key, cluster.etcd.ca and
//     the encryption secret (secretboxEncryptionSecret, or
//     aescbcEncryptionSecret when the bundle holds that one);
//   - worker: machine.ca.key and cluster.ca.key are "": a worker holds no
//     CA key, and no etcd, aggregator or service-account secret.
//
// Another machine type is an error.
func (b *Bundle) Fills(machineType string) ([]Fill, error) {
	var cp bool
	switch machineType {
	case "controlplane", "init":
		cp = true
	case "worker":
	default:
		return nil, fmt.Errorf("secrets: machine type %q: want controlplane, init or worker", machineType)
	}
	enc64 := base64.StdEncoding.EncodeToString
	keyOf := func(c CertAndKey, field string) (string, string) {
		if !cp {
			return "", ""
		}
		return enc64(c.Key), field
	}
	osKey, osField := keyOf(b.Certs.OS, fOS+".key")
	k8sKey, k8sField := keyOf(b.Certs.K8s, fK8s+".key")
	f := []Fill{
		{[]string{"machine", "token"}, b.TrustdInfo.Token, fTrustdToken},
		{[]string{"machine", "ca", "crt"}, enc64(b.Certs.OS.Crt), fOS + ".crt"},
		{[]string{"machine", "ca", "key"}, osKey, osField},
		{[]string{"cluster", "id"}, b.Cluster.ID, fClusterID},
		{[]string{"cluster", "secret"}, b.Cluster.Secret, fClusterSecret},
		{[]string{"cluster", "token"}, b.Secrets.BootstrapToken, fBootstrapToken},
		{[]string{"cluster", "ca", "crt"}, enc64(b.Certs.K8s.Crt), fK8s + ".crt"},
		{[]string{"cluster", "ca", "key"}, k8sKey, k8sField},
	}
	if !cp {
		return f, nil
	}
	if b.Secrets.SecretboxEncryptionSecret != "" {
		f = append(f, Fill{[]string{"cluster", "secretboxEncryptionSecret"}, b.Secrets.SecretboxEncryptionSecret, fSecretbox})
	} else {
		f = append(f, Fill{[]string{"cluster", "aescbcEncryptionSecret"}, b.Secrets.AESCBCEncryptionSecret, fAESCBC})
	}
	return append(f,
		Fill{[]string{"cluster", "aggregatorCA", "crt"}, enc64(b.Certs.K8sAggregator.Crt), fAggregator + ".crt"},
		Fill{[]string{"cluster", "aggregatorCA", "key"}, enc64(b.Certs.K8sAggregator.Key), fAggregator + ".key"},
		Fill{[]string{"cluster", "serviceAccount", "key"}, enc64(b.Certs.K8sServiceAccount.Key), fServiceAccount + ".key"},
		Fill{[]string{"cluster", "etcd", "ca", "crt"}, enc64(b.Certs.Etcd.Crt), fEtcd + ".crt"},
		Fill{[]string{"cluster", "etcd", "ca", "key"}, enc64(b.Certs.Etcd.Key), fEtcd + ".key"},
	), nil
}
