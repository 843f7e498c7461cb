package doctor

import (
	"net/netip"
	"strings"
)

// NameKind says what kind of API server name a host is.
type NameKind string

// The kinds of names ClassifyName recognises.
const (
	// NameIP is an IP address: there is nothing to resolve.
	NameIP NameKind = "ip"
	// NameAKSPrivate is the private FQDN of a private AKS cluster,
	// <labels>.privatelink.<region>.azmk8s.io. It lives in a private DNS
	// zone that only resolvers linked to it (Azure DNS 168.63.129.16 inside
	// a linked VNet) can answer.
	NameAKSPrivate NameKind = "aks-private-fqdn"
	// NameAKSPublic is <labels>.hcp.<region>.azmk8s.io: the FQDN of a public
	// cluster, or the public FQDN of a private cluster, which public DNS
	// answers with the private IP.
	NameAKSPublic NameKind = "aks-public-fqdn"
	// NameAKSOther is any other name under azmk8s.io.
	NameAKSOther NameKind = "aks-other"
	// NameOther is any other host name.
	NameOther NameKind = "other"
)

// aksDomain is the DNS domain of AKS API servers in Azure's public cloud.
const aksDomain = "azmk8s.io"

// NameInfo is what ClassifyName learns from a host name alone.
type NameInfo struct {
	// Host is the name as written in the kubeconfig, without brackets.
	Host string   `json:"host"`
	Kind NameKind `json:"kind"`
	// Region is the Azure region label of an AKS private or public FQDN.
	Region string `json:"region,omitempty"`
	// PrivateZone is privatelink.<region>.azmk8s.io for an AKS name: the
	// zone a conditional forwarder has to send to Azure DNS.
	PrivateZone string `json:"privateZone,omitempty"`
	// TrailingDot is set when the name ends with a dot. Resolvers accept it,
	// but Go matches NO_PROXY against the name literally.
	TrailingDot bool `json:"trailingDot,omitempty"`
}

// Describe is a short human description of the kind of name.
func (n NameInfo) Describe() string {
	switch n.Kind {
	case NameIP:
		return "an IP address"
	case NameAKSPrivate:
		return "the private FQDN of an AKS private cluster (private DNS zone " + n.PrivateZone + ")"
	case NameAKSPublic:
		return "an AKS public FQDN (of a public cluster, or the public FQDN of a private cluster), region " + n.Region
	case NameAKSOther:
		return "a name under " + aksDomain
	default:
		return "a host name"
	}
}

// ClassifyName recognises AKS API server names. Matching ignores case and a
// trailing dot:
//
//	<x>.privatelink.<region>.azmk8s.io  NameAKSPrivate (x may be several labels)
//	<x>.hcp.<region>.azmk8s.io          NameAKSPublic
//	anything else under azmk8s.io       NameAKSOther
//	an IPv4 or IPv6 address             NameIP
//	anything else                       NameOther
func ClassifyName(host string) NameInfo {
	n := NameInfo{Host: host, Kind: NameOther}
	if _, err := netip.ParseAddr(host); err == nil {
		n.Kind = NameIP
		return n
	}
	name := strings.ToLower(host)
	if strings.HasSuffix(name, ".") {
		n.TrailingDot = true
		name = strings.TrimSuffix(name, ".")
	}
	if name != aksDomain && !strings.HasSuffix(name, "."+aksDomain) {
		return n
	}
	n.Kind = NameAKSOther
	labels := strings.Split(strings.TrimSuffix(name, "."+aksDomain), ".")
	// labels: [x..., privatelink|hcp, region]
	if len(labels) < 3 {
		return n
	}
	region, kind := labels[len(labels)-1], labels[len(labels)-2]
	if !isRegionLabel(region) || !allNonEmpty(labels[:len(labels)-2]) {
		return n
	}
	switch kind {
	case "privatelink":
		n.Kind = NameAKSPrivate
	case "hcp":
		n.Kind = NameAKSPublic
	default:
		return n
	}
	n.Region = region
	n.PrivateZone = "privatelink." + region + "." + aksDomain
	return n
}

// isRegionLabel reports whether s looks like an Azure region name
// (westeurope, eastus2, ...): lower-case letters and digits.
func isRegionLabel(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func allNonEmpty(labels []string) bool {
	for _, l := range labels {
		if l == "" {
			return false
		}
	}
	return len(labels) > 0
}
