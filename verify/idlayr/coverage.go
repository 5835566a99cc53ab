package idlayr

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/simproof/simproof/verify"
)

// Coverage is what the coverage preflight learnt about the modem's network.
type Coverage struct {
	CountryCode string   `json:"country_code"`
	NetworkID   string   `json:"network_id"` // MCC+MNC
	NetworkName string   `json:"network_name"`
	Products    []string `json:"products"`
	// PhoneCheck: the operator supports PhoneCheck.
	PhoneCheck bool `json:"phone_check"`
}

// Coverage asks IDlayr which operator the device's address belongs to and
// whether it supports PhoneCheck. The request goes over device, the pinned
// client, because the answer is about the source address; its token has the
// coverage scope. A non-mobile source is not_mobile_ip.
func (p *Provider) Coverage(ctx context.Context, device *http.Client) (*Coverage, error) {
	if device == nil {
		return nil, verify.Errorf(verify.CodeNoBearer, "idlayr coverage: no pinned client")
	}
	// Never follow a redirect with the bearer token attached.
	pinned := &http.Client{Transport: device.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(p.cfg.CallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r, err := p.call(ctx, pinned, "coverage", http.MethodGet, "/coverage/v0.1/device_ip", nil, "", ScopeCoverage, deadline)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		outcome, e := classify("coverage", r, false)
		if e == nil {
			e = &verify.Error{Code: outcome, HTTPStatus: r.status, ProviderCode: problemOf(r).token(),
				Message: "coverage: the device's address is not covered"}
		}
		if r.status == http.StatusNotFound {
			e.Code = verify.CodeUnsupportedOperator // no coverage for this address
		}
		return nil, e
	}
	var b struct {
		CountryCode string `json:"country_code"`
		NetworkID   string `json:"network_id"`
		NetworkName string `json:"network_name"`
		Products    []struct {
			ProductID   string `json:"product_id"`
			ProductName string `json:"product_name"`
		} `json:"products"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		return nil, verify.Errorf(verify.CodeProviderError, "coverage: unreadable answer")
	}
	c := &Coverage{CountryCode: b.CountryCode, NetworkID: b.NetworkID, NetworkName: b.NetworkName, Products: []string{}}
	for _, pr := range b.Products {
		name := pr.ProductName
		if name == "" {
			name = pr.ProductID
		}
		c.Products = append(c.Products, name)
		norm := strings.NewReplacer(" ", "", "_", "", "-", "").Replace(strings.ToLower(pr.ProductName))
		if norm == "phonecheck" || strings.HasPrefix(strings.ToUpper(pr.ProductID), "PCK") {
			c.PhoneCheck = true
		}
	}
	return c, nil
}

// TokenFetches reports how many tokens of scope have been requested (for
// metrics and tests).
func (p *Provider) TokenFetches(scope string) int {
	if tc, ok := p.tokens[scope]; ok {
		return tc.fetchCount()
	}
	return 0
}
