package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify"
)

func init() {
	commands = append(commands,
		command{"check", "--provider P --phone N [--modem M] [--trace] | --url URL [--stop-at U]", "run a check and wait for its verdict", cmdCheck},
		command{"checks", "[--status S] [--modem M] [--limit N]", "list recent checks, newest first", cmdChecks},
		command{"connect", "ID [--apn APN]", "bring a modem's data session up", cmdConnect},
		command{"disconnect", "ID", "bring a modem's data session down", cmdDisconnect},
		command{"open-url", "--modem ID [--stop-at U] [--max-hops N] URL", "fetch a URL over a modem, following redirects", cmdOpenURL},
	)
}

func cmdCheck(ctx context.Context, env Env, g *globals, args []string) int {
	var req agent.CheckRequest
	var trace bool
	var wait time.Duration
	if _, ok := parse(env, g, "check", args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&req.Provider, "provider", "", "idlayr or plasgate")
		fs.StringVar(&req.PhoneNumber, "phone", "", "the number to verify, E.164")
		fs.StringVar(&req.Modem, "modem", "", "modem id, imei:…, iccid:… (default: the modem whose SIM answers for the number)")
		fs.StringVar(&req.Scope, "scope", "", "PlasGate scope (phone_verify, mobile_id, phone, profile)")
		fs.StringVar(&req.Version, "version", "", "IDlayr API version (v0.1, v0.2)")
		fs.StringVar(&req.IdempotencyKey, "idempotency-key", "", "retrying with the same key returns the same check")
		fs.StringVar(&req.URL, "url", "", "device-only: fetch this check URL instead of running a provider flow")
		fs.StringVar(&req.StopAt, "stop-at", "", "device-only: stop (without fetching) at this redirect URI")
		fs.BoolVar(&trace, "trace", false, "print every hop of the device step")
		fs.DurationVar(&wait, "wait", 3*time.Minute, "how long to wait for the verdict")
	}); !ok {
		return ExitUsage
	}
	if req.URL == "" && (req.Provider == "" || (req.PhoneNumber == "" && req.Provider != "plasgate")) {
		fmt.Fprintln(env.Stderr, "simproof check: --provider and --phone are required (or --url for device-only mode)")
		return ExitUsage
	}
	c := NewClient(g.socket)
	var chk agent.Check
	raw, err := c.Do(ctx, "POST", "/v1/checks?wait="+url.QueryEscape(wait.String()), req, &chk)
	if err != nil {
		return fail(env, err)
	}
	// The server caps one long poll; keep polling until final or our wait ends.
	deadline := time.Now().Add(wait)
	for !chk.Final() && time.Now().Before(deadline) {
		left := time.Until(deadline).Round(time.Second)
		if raw, err = c.Do(ctx, "GET", "/v1/checks/"+chk.ID+"?wait="+url.QueryEscape(left.String()), nil, &chk); err != nil {
			return fail(env, err)
		}
	}
	if g.json {
		printRaw(env, raw)
	} else {
		printCheck(env.Stdout, &chk, trace)
	}
	return CheckExit(&chk)
}

// CheckExit maps a check to the CLI's exit status (spec/api.md's table).
func CheckExit(c *agent.Check) int {
	switch {
	case c.Status != agent.StatusCompleted:
		return ExitFailed
	case c.Result == nil || c.Result.Result == nil || c.Result.Verified == nil:
		return ExitOK // device-only, or a scope that does not decide
	case *c.Result.Verified:
		return ExitOK
	default:
		return ExitNotVerified
	}
}

func verdict(c *agent.Check) string {
	switch {
	case !c.Final():
		return "still " + c.Status
	case c.Status != agent.StatusCompleted:
		if c.Error != nil {
			return fmt.Sprintf("%s: %s (%s)", strings.ToUpper(c.Status), c.Error.Code, c.Error.Message)
		}
		return strings.ToUpper(c.Status)
	case c.Result == nil || c.Result.Result == nil || c.Result.Verified == nil:
		return "COMPLETED (this check does not decide verification)"
	case *c.Result.Verified:
		return "VERIFIED"
	case c.Result.Reason != "":
		return "NOT VERIFIED: " + c.Result.Reason
	default:
		return "NOT VERIFIED"
	}
}

func printCheck(w io.Writer, c *agent.Check, trace bool) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("check", c.ID)
	row("provider", c.Provider)
	row("modem", c.Modem)
	row("phone", verify.MaskPhone(c.PhoneNumber))
	row("verdict", verdict(c))
	if r := c.Result; r != nil && r.Result != nil {
		row("provider check", r.CheckID)
		row("provider status", r.ProviderStatus)
		if r.Match != nil {
			row("match", fmt.Sprint(*r.Match))
		}
		if r.PhoneNumberVerified != nil {
			row("phone_number_verified", fmt.Sprint(*r.PhoneNumberVerified))
		}
		row("mobile_id", r.MobileID)
		row("error_description", strings.TrimSpace(r.ErrorDescription))
	}
	if r := c.Result; r != nil && r.Device != nil {
		row("final status", fmt.Sprint(r.Device.FinalStatus))
		row("final url", r.Device.FinalURL)
		if len(r.Device.RedirectParams) > 0 {
			b, _ := json.Marshal(r.Device.RedirectParams)
			row("redirect params", string(b))
		}
	}
	if c.StartedAt != nil && c.FinishedAt != nil {
		row("took", c.FinishedAt.Sub(*c.StartedAt).Round(time.Millisecond).String())
	}
	tw.Flush()
	if trace {
		printTrace(w, c.Trace)
	}
}

func printTrace(w io.Writer, hops []verify.Hop) {
	if len(hops) == 0 {
		return
	}
	fmt.Fprintln(w, "trace:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tSTATUS\tIFACE\tLOCAL\tREMOTE\tMS\tURL")
	for i, h := range hops {
		st := fmt.Sprint(h.Status)
		if h.Error != "" {
			st = "error: " + h.Error
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%.1f\t%s\n", i+1, st, orDash(h.Interface), orDash(h.LocalAddress),
			orDash(h.RemoteAddress), h.DurationMS, h.URL)
	}
	tw.Flush()
}

func cmdChecks(ctx context.Context, env Env, g *globals, args []string) int {
	var status, modemID string
	var limit int
	if _, ok := parse(env, g, "checks", args, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&status, "status", "", "only checks with this status")
		fs.StringVar(&modemID, "modem", "", "only checks on this modem")
		fs.IntVar(&limit, "limit", 20, "at most this many")
	}); !ok {
		return ExitUsage
	}
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if status != "" {
		q.Set("status", status)
	}
	if modemID != "" {
		q.Set("modem", modemID)
	}
	var list agent.CheckList
	raw, err := NewClient(g.socket).Do(ctx, "GET", "/v1/checks?"+q.Encode(), nil, &list)
	if err != nil {
		return fail(env, err)
	}
	if g.json {
		printRaw(env, raw)
		return ExitOK
	}
	if len(list.Checks) == 0 {
		fmt.Fprintln(env.Stdout, "no checks")
		return ExitOK
	}
	tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tPROVIDER\tMODEM\tPHONE\tVERDICT")
	for _, c := range list.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.CreatedAt.Local().Format(time.DateTime), c.Provider, c.Modem,
			orDash(verify.MaskPhone(c.PhoneNumber)), verdict(c))
	}
	tw.Flush()
	return ExitOK
}

func cmdConnect(ctx context.Context, env Env, g *globals, args []string) int {
	var req agent.ConnectRequest
	pos, ok := parse(env, g, "connect", args, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&req.APN, "apn", "", "APN (default: the SIM's from sims:, else apn_default)")
		fs.StringVar(&req.IPType, "ip-type", "", "ipv4, ipv6 or ipv4v6")
	})
	if !ok {
		return ExitUsage
	}
	return modemAction(ctx, env, g, "/v1/modems/"+url.PathEscape(pos[0])+"/connect", req)
}

func cmdDisconnect(ctx context.Context, env Env, g *globals, args []string) int {
	pos, ok := parse(env, g, "disconnect", args, 1, nil)
	if !ok {
		return ExitUsage
	}
	return modemAction(ctx, env, g, "/v1/modems/"+url.PathEscape(pos[0])+"/disconnect", nil)
}

func modemAction(ctx context.Context, env Env, g *globals, path string, body any) int {
	var m modem.Info
	raw, err := NewClient(g.socket).Do(ctx, "POST", path, body, &m)
	if err != nil {
		return fail(env, err)
	}
	if g.json {
		printRaw(env, raw)
		return ExitOK
	}
	printModem(env.Stdout, m)
	return ExitOK
}

func cmdOpenURL(ctx context.Context, env Env, g *globals, args []string) int {
	var modemID, stopAt string
	var hops int
	pos, ok := parse(env, g, "open-url", args, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&modemID, "modem", "", "the modem whose data session carries the request (required)")
		fs.StringVar(&stopAt, "stop-at", "", "stop, without fetching it, at a redirect to this URI")
		fs.IntVar(&hops, "max-hops", 0, "redirect cap (default: checks.hop_limit)")
	})
	if !ok {
		return ExitUsage
	}
	if modemID == "" {
		fmt.Fprintln(env.Stderr, "simproof open-url: --modem is required")
		return ExitUsage
	}
	var res agent.OpenResponse
	raw, err := NewClient(g.socket).Do(ctx, "POST", "/v1/modems/"+url.PathEscape(modemID)+"/open",
		map[string]any{"url": pos[0], "stop_at": stopAt, "max_hops": hops}, &res)
	if err != nil {
		return fail(env, err)
	}
	if g.json {
		printRaw(env, raw)
		return ExitOK
	}
	if res.Result == nil {
		return fail(env, fmt.Errorf("empty answer"))
	}
	printTrace(env.Stdout, res.Trace)
	fmt.Fprintf(env.Stdout, "final: %d %s\n", res.FinalStatus, res.FinalURL)
	if len(res.RedirectParams) > 0 {
		b, _ := json.Marshal(res.RedirectParams)
		fmt.Fprintf(env.Stdout, "redirect params: %s\n", b)
	}
	return ExitOK
}
