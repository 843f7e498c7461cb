package doctor

import "testing"

func TestClassifyName(t *testing.T) {
	tests := []struct {
		host   string
		kind   NameKind
		region string
		zone   string
		dot    bool
	}{
		{"tg-abc123.0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.privatelink.westeurope.azmk8s.io", NameAKSPrivate, "westeurope", "privatelink.westeurope.azmk8s.io", false},
		{"x.privatelink.eastus2.azmk8s.io", NameAKSPrivate, "eastus2", "privatelink.eastus2.azmk8s.io", false},
		{"X.PrivateLink.WestEurope.AZMK8S.IO.", NameAKSPrivate, "westeurope", "privatelink.westeurope.azmk8s.io", true},
		{"tg-abc123.hcp.westeurope.azmk8s.io", NameAKSPublic, "westeurope", "privatelink.westeurope.azmk8s.io", false},
		{"privatelink.westeurope.azmk8s.io", NameAKSOther, "", "", false},
		{"hcp.westeurope.azmk8s.io", NameAKSOther, "", "", false},
		{"x..privatelink.westeurope.azmk8s.io", NameAKSOther, "", "", false},
		{"x.privatelink.west_europe.azmk8s.io", NameAKSOther, "", "", false},
		{"portal.azmk8s.io", NameAKSOther, "", "", false},
		{"azmk8s.io", NameAKSOther, "", "", false},
		{"x.privatelink.westeurope.azmk8s.io.evil.com", NameOther, "", "", false},
		{"notazmk8s.io", NameOther, "", "", false},
		{"api.corp.example", NameOther, "", "", false},
		{"10.1.2.3", NameIP, "", "", false},
		{"fd00::1", NameIP, "", "", false},
		{"", NameOther, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			n := ClassifyName(tt.host)
			if n.Kind != tt.kind || n.Region != tt.region || n.PrivateZone != tt.zone || n.TrailingDot != tt.dot {
				t.Errorf("ClassifyName(%q) = %+v, want kind %q region %q zone %q dot %v", tt.host, n, tt.kind, tt.region, tt.zone, tt.dot)
			}
			if n.Describe() == "" {
				t.Error("no description")
			}
		})
	}
}
