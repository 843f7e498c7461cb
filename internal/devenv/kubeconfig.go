package devenv

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig renders cfg (TLS client certificate or bearer token) as a
// kubeconfig with one cluster, user and context named contextName.
func Kubeconfig(cfg *rest.Config, contextName string) ([]byte, error) {
	if cfg == nil || cfg.Host == "" {
		return nil, fmt.Errorf("kubeconfig: no API server address in the client configuration")
	}
	kc := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = cfg.Host
	cluster.CertificateAuthorityData = cfg.CAData
	cluster.CertificateAuthority = cfg.CAFile
	cluster.TLSServerName = cfg.ServerName
	kc.Clusters[contextName] = cluster

	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData = cfg.CertData
	user.ClientKeyData = cfg.KeyData
	user.ClientCertificate = cfg.CertFile
	user.ClientKey = cfg.KeyFile
	user.Token = cfg.BearerToken
	kc.AuthInfos[contextName] = user

	ctx := clientcmdapi.NewContext()
	ctx.Cluster = contextName
	ctx.AuthInfo = contextName
	kc.Contexts[contextName] = ctx
	kc.CurrentContext = contextName
	return clientcmd.Write(*kc)
}

func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}
