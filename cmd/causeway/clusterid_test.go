package main

import (
	"testing"

	"github.com/google/uuid"
)

func TestParseClusterID(t *testing.T) {
	id := uuid.New()
	if got, err := parseClusterID(id.String()); err != nil || got != id {
		t.Fatalf("a UUID = %v, %v; want itself", got, err)
	}
	a, err := parseClusterID("shop-prod")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := parseClusterID("shop-prod")
	other, _ := parseClusterID("shop-staging")
	if a != again || a == other || a == uuid.Nil {
		t.Fatalf("names: shop-prod = %v then %v, shop-staging = %v; want one stable id per name", a, again, other)
	}
	for _, bad := range []string{"", "has space", "-leading-dash", "ünïcode", uuid.Nil.String(), string(make([]byte, 129))} {
		if got, err := parseClusterID(bad); err == nil {
			t.Errorf("parseClusterID(%q) = %v, want an error", bad, got)
		}
	}
}
