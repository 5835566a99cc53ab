package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

// Pinner hands out the client pinned to a modem's bearer (netbind): it
// applies the bearer's configuration where simproof manages the interface,
// and every socket of the client is bound to that interface.
type Pinner interface {
	Pin(ctx context.Context, modemID string, d modem.DataInfo) (*http.Client, error)
	Unpin(modemID string)
}

// SchedulerOptions wire the scheduler.
type SchedulerOptions struct {
	Checks        config.Checks
	SIMs          []config.SIM
	APN           config.APN
	IDlayrVersion string // the configured default, recorded per check for resumption
	Providers     map[string]verify.Provider
	Pinner        Pinner
	Journal       *Journal
	Registry      *Registry
	Hub           *Hub
	Log           *slog.Logger
	// Metrics counts finished checks; nil: none.
	Metrics *Metrics
	// ReadSecret reads a secret file (SIM passwords); nil means verify.ReadSecretFile.
	ReadSecret func(string) ([]byte, error)
}

// Scheduler runs checks: at most one per modem at a time, different modems
// in parallel, a bounded queue in front. Every check is journaled before any
// provider call.
type Scheduler struct {
	o   SchedulerOptions
	log *slog.Logger
	ctx context.Context // the daemon's; cancelling it leaves running checks "running" in the journal

	mu     sync.Mutex
	queued int
	modems map[string]*modemSlot
	live   map[string]*liveCheck
	wg     sync.WaitGroup

	keyLocks [64]sync.Mutex // by idempotency key's hash: one key's submissions take turns
}

// modemSlot serialises the work on one modem: checks, open, connect.
type modemSlot struct {
	sem  chan struct{} // capacity 1: held while something uses the modem
	jobs chan *liveCheck
}

// liveCheck is a check this process runs or ran recently, with its
// unredacted result for ?wait= callers.
type liveCheck struct {
	mu    sync.Mutex
	check *Check
	req   CheckRequest
	done  chan struct{}
}

func (l *liveCheck) snapshot() *Check {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *l.check
	c.Trace = append([]verify.Hop(nil), l.check.Trace...)
	return &c
}

// CheckRequest is POST /v1/checks.
type CheckRequest struct {
	Provider       string `json:"provider"`
	PhoneNumber    string `json:"phone_number"`
	Modem          string `json:"modem"`
	IdempotencyKey string `json:"idempotency_key"`
	Scope          string `json:"scope"`
	Version        string `json:"version"`
	URL            string `json:"url"`
	StopAt         string `json:"stop_at"`
	MaxHops        int    `json:"max_hops"`
}

// apiError is an error the API turns into problem+json.
type apiError struct {
	status int
	code   string
	msg    string
	retry  time.Duration
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// liveKeep is how long a finished check's unredacted result stays in memory.
const liveKeep = 10 * time.Minute

// NewScheduler returns a scheduler; Start runs it.
func NewScheduler(o SchedulerOptions) *Scheduler {
	if o.ReadSecret == nil {
		o.ReadSecret = verify.ReadSecretFile
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{o: o, log: o.Log.With("part", "scheduler"), modems: map[string]*modemSlot{}, live: map[string]*liveCheck{}}
}

// Start recovers what a previous run left unfinished and begins accepting.
func (s *Scheduler) Start(ctx context.Context) error {
	s.ctx = ctx
	if err := s.recover(ctx); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.pruneLoop(ctx)
	}()
	return nil
}

// Alive proves the scheduler is not wedged: its lock is free within the
// deadline and the journal answers a read.
func (s *Scheduler) Alive(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		s.mu.Lock()
		queued := s.queued
		s.mu.Unlock()
		_, err := s.o.Journal.List(nil, 1)
		if err == nil && queued < 0 {
			err = fmt.Errorf("queue count %d", queued)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("scheduler did not answer: %w", ctx.Err())
	}
}

// Running is the number of checks queued or running now.
func (s *Scheduler) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.live {
		select {
		case <-l.done:
		default:
			n++
		}
	}
	return n
}

// Wait blocks until every worker has stopped (after ctx ended).
func (s *Scheduler) Wait() { s.wg.Wait() }

func (s *Scheduler) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.o.Journal.Prune(time.Now().Add(-s.o.Checks.Retention)); err != nil {
			s.log.Warn("journal prune failed", "err", err)
		} else if n > 0 {
			s.log.Info("journal pruned", "checks", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Submit validates, journals and queues a check. created is false for an
// idempotent replay, which returns the check the key first created.
func (s *Scheduler) Submit(req CheckRequest) (*Check, *liveCheck, bool, error) {
	// Submissions with one key take turns (a stripe of locks by key), so
	// concurrent first tries create one check and reserve one queue place;
	// others, keyed or not, do not wait for each other.
	if key := req.IdempotencyKey; key != "" {
		h := fnv.New32a()
		h.Write([]byte(key))
		mu := &s.keyLocks[h.Sum32()%uint32(len(s.keyLocks))]
		mu.Lock()
		defer mu.Unlock()
		// A replay returns the first check even when its request would no
		// longer validate (the modem was unplugged, the provider removed):
		// the retry is about that check, not a new one.
		if prev, err := s.replay(key); err != nil || prev != nil {
			return prev, s.liveOf(prev), false, err
		}
	}
	c, err := s.validate(&req)
	if err != nil {
		return nil, nil, false, err
	}
	// No lock around the journal write: Create is one transaction that
	// either creates or finds the key's check, so concurrent submissions
	// (an array's worth) share group commits instead of queueing.
	slot := s.slot(c.Modem)
	s.mu.Lock()
	if s.queued >= s.o.Checks.Queue {
		s.mu.Unlock()
		return nil, nil, false, &apiError{status: http.StatusTooManyRequests, code: "queue_full",
			msg: fmt.Sprintf("%d checks are already waiting", s.o.Checks.Queue), retry: 5 * time.Second}
	}
	s.queued++
	s.mu.Unlock()
	unreserve := func() { s.mu.Lock(); s.queued--; s.mu.Unlock() }

	stored, created, err := s.o.Journal.Create(c)
	if err != nil {
		unreserve()
		return nil, nil, false, err
	}
	if !created {
		unreserve()
		return stored, s.liveOf(stored), false, nil
	}
	l := &liveCheck{check: c, req: req, done: make(chan struct{})}
	s.mu.Lock()
	s.live[c.ID] = l
	s.mu.Unlock()
	s.publish(c)
	slot.jobs <- l // never blocks: capacity is the queue bound
	return c.forAPI(), l, true, nil
}

func (s *Scheduler) replay(key string) (*Check, error) {
	c, err := s.o.Journal.ByIdempotencyKey(key)
	if err != nil || c == nil {
		return nil, err
	}
	if l := s.liveOf(c); l != nil {
		return l.snapshot(), nil
	}
	return c, nil
}

func (s *Scheduler) liveOf(c *Check) *liveCheck {
	if c == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[c.ID]
}

// validate normalises the request and chooses the modem.
func (s *Scheduler) validate(req *CheckRequest) (*Check, error) {
	now := time.Now().UTC()
	c := &Check{ID: newCheckID(now), Provider: req.Provider, Status: StatusQueued, CreatedAt: now,
		IdempotencyKey: req.IdempotencyKey, Scope: req.Scope, Version: req.Version, StopAt: req.StopAt, Trace: []verify.Hop{}}
	if len(req.IdempotencyKey) > 200 {
		return nil, badRequest(CodeBadRequest, "idempotency_key is longer than 200 characters")
	}
	switch {
	case req.URL != "":
		if req.PhoneNumber != "" {
			return nil, badRequest(CodeBadRequest, "give url or phone_number, not both")
		}
		if !strings.HasPrefix(strings.ToLower(req.URL), "https://") || len(req.URL) > 8192 {
			return nil, badRequest("bad_url", "url must be an absolute https URL")
		}
		if req.MaxHops < 0 || req.MaxHops > 50 {
			return nil, badRequest(CodeBadRequest, "max_hops must be 0 to 50")
		}
		switch _, known := s.o.Providers[req.Provider]; {
		case req.Provider == "":
			c.Provider = "device"
		case !known:
			// The provider names the check in metrics and lists: only ones
			// the daemon knows, so labels stay a bounded set.
			return nil, badRequest("unknown_provider", "provider %q is not configured (have: %s)", req.Provider, strings.Join(s.providerNames(), ", "))
		}
		c.URL = req.URL
	case req.Provider == "":
		return nil, badRequest(CodeBadRequest, "provider is required (idlayr or plasgate)")
	default:
		if _, ok := s.o.Providers[req.Provider]; !ok {
			return nil, badRequest("unknown_provider", "provider %q is not configured (have: %s)", req.Provider, strings.Join(s.providerNames(), ", "))
		}
		if req.PhoneNumber != "" || req.Provider != "plasgate" {
			digits, err := verify.Digits(req.PhoneNumber)
			if err != nil {
				return nil, badRequest("invalid_phone_number", "%v", err)
			}
			c.PhoneNumber = "+" + digits
		}
		if c.Provider == "idlayr" && c.Version == "" {
			c.Version = s.o.IDlayrVersion
		}
		if c.Version != "" && c.Version != "v0.1" && c.Version != "v0.2" {
			return nil, badRequest(CodeBadRequest, "version must be v0.1 or v0.2")
		}
	}
	id, err := s.chooseModem(req.Modem, c.PhoneNumber)
	if err != nil {
		return nil, err
	}
	c.Modem = id
	return c, nil
}

func (s *Scheduler) providerNames() []string {
	var out []string
	for k := range s.o.Providers {
		out = append(out, k)
	}
	return out
}

// chooseModem applies api.md's "Choosing a modem": an explicit selector, else
// a free modem whose SIM answers for the number, else the only modem when no
// number is known anywhere. Never spend a check on a SIM that cannot match.
func (s *Scheduler) chooseModem(sel, phone string) (string, error) {
	if sel != "" {
		_, info, err := s.o.Registry.Lookup(sel)
		if err != nil {
			return "", &apiError{status: http.StatusNotFound, code: CodeModemNotFound, msg: fmt.Sprintf("no modem %q", sel)}
		}
		return info.ID, nil
	}
	all := s.o.Registry.List()
	var matches []modem.Info
	known := false
	for _, m := range all {
		nums := s.numbersOf(m)
		if len(nums) > 0 {
			known = true
		}
		for _, n := range nums {
			if phone != "" && n == phone {
				matches = append(matches, m)
			}
		}
	}
	for _, m := range matches {
		if !m.Busy {
			return m.ID, nil
		}
	}
	if len(matches) > 0 {
		return matches[0].ID, nil // all busy: queue behind the one that can match
	}
	if !known && len(all) == 1 {
		return all[0].ID, nil
	}
	why := "no modem's SIM is known to answer for this number (set sims[].phone_number by ICCID, or name a modem)"
	if len(all) == 0 {
		why = "no modem is present"
	}
	return "", badRequest("modem_required", "%s", why)
}

// numbersOf returns the numbers a modem's SIM answers for: from sims: by
// ICCID, else the SIM's own numbers.
func (s *Scheduler) numbersOf(m modem.Info) []string {
	for _, sc := range s.o.SIMs {
		if sc.ICCID != "" && sc.ICCID == m.SIM.ICCID && sc.PhoneNumber != "" {
			if d, err := verify.Digits(sc.PhoneNumber); err == nil {
				return []string{"+" + d}
			}
		}
	}
	var out []string
	for _, n := range m.SIM.OwnNumbers {
		if d, err := verify.Digits(n); err == nil {
			out = append(out, "+"+d)
		}
	}
	return out
}

// ConnectParams returns the data session settings for a modem's SIM.
func (s *Scheduler) ConnectParams(info modem.Info) (modem.ConnectParams, error) {
	p := modem.ConnectParams{APN: s.o.APN.APN, IPType: s.o.APN.IPType}
	for _, sc := range s.o.SIMs {
		if sc.ICCID == "" || sc.ICCID != info.SIM.ICCID {
			continue
		}
		if sc.APN != "" {
			p.APN = sc.APN
		}
		if sc.IPType != "" {
			p.IPType = sc.IPType
		}
		p.User = sc.User
		if sc.PasswordFile != "" {
			pw, err := s.o.ReadSecret(SecretPath(sc.PasswordFile))
			if err != nil {
				return p, fmt.Errorf("sims[%s].password_file: %w", verify.MaskPhone(sc.ICCID), err)
			}
			p.Password = strings.TrimSpace(string(pw))
		}
	}
	return p, nil
}

// slot returns the modem's slot, starting its worker on first use.
func (s *Scheduler) slot(id string) *modemSlot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl, ok := s.modems[id]; ok {
		return sl
	}
	sl := &modemSlot{sem: make(chan struct{}, 1), jobs: make(chan *liveCheck, s.o.Checks.Queue)}
	s.modems[id] = sl
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.worker(sl)
	}()
	return sl
}

func (s *Scheduler) worker(sl *modemSlot) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case l := <-sl.jobs:
			s.mu.Lock()
			s.queued--
			s.mu.Unlock()
			select {
			case sl.sem <- struct{}{}:
			case <-s.ctx.Done():
				return
			}
			s.run(l)
			<-sl.sem
		}
	}
}

// TryUse runs fn with the modem's slot held, or says the modem is busy.
func (s *Scheduler) TryUse(id string, fn func() error) error {
	sl := s.slot(id)
	select {
	case sl.sem <- struct{}{}:
	default:
		return &apiError{status: http.StatusConflict, code: "modem_busy", msg: "a check is running on modem " + id}
	}
	defer func() { <-sl.sem }()
	s.o.Registry.SetBusy(id, true)
	defer s.o.Registry.SetBusy(id, false)
	return fn()
}

// errModemGone is the cancellation cause when the modem disappears mid-check.
var errModemGone = fmt.Errorf("modem removed during the check: %w", modem.ErrGone)

// run executes one check on its modem.
func (s *Scheduler) run(l *liveCheck) {
	// A *Check installed as l.check is never written again (readers
	// snapshot it without the worker's help): every change below starts
	// from a fresh snapshot, which also carries what Progress recorded
	// meanwhile (the provider's check id).
	c := l.snapshot()
	now := time.Now().UTC()
	c.Status, c.StartedAt = StatusRunning, &now
	s.update(l, c)

	m, info, err := s.o.Registry.Lookup(c.Modem)
	if err != nil {
		s.fail(l, l.snapshot(), verify.CodeModemGone, "modem "+c.Modem+" is gone")
		return
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	ctx, cancelT := context.WithTimeout(ctx, s.o.Checks.TTLCap+30*time.Second)
	defer cancelT()
	stopWatch := s.o.Registry.OnRemove(info.ID, func() { cancel(errModemGone) })
	defer stopWatch()
	s.o.Registry.SetBusy(info.ID, true)
	defer s.o.Registry.SetBusy(info.ID, false)

	res, dev, err := s.execute(ctx, m, info, c, l)
	if err != nil && s.ctx.Err() != nil {
		// Shutting down cut the check short: the journal keeps it
		// "running" with its provider id, and the next start resumes or
		// reports it. A check that finished anyway is recorded below.
		return
	}
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, modem.ErrGone) {
		err = cause
	}
	c = l.snapshot()
	if err != nil {
		code, msg, trace := classify(err)
		if len(trace) > 0 {
			c.Trace = trace
		}
		s.fail(l, c, code, msg)
		return
	}
	fin := time.Now().UTC()
	c.Status, c.FinishedAt, c.Stage = StatusCompleted, &fin, ""
	c.Result = &CheckResult{Result: res, Device: dev}
	if res != nil && len(res.Trace) > 0 {
		c.Trace = res.Trace
	}
	if dev != nil {
		c.Trace = dev.Trace
	}
	s.finish(l, c)
}

// execute brings the bearer up, pins a client to it and runs the provider
// (or the device-only step).
func (s *Scheduler) execute(ctx context.Context, m modem.Modem, info modem.Info, c *Check, l *liveCheck) (*verify.Result, *redirect.Result, error) {
	params, err := s.ConnectParams(info)
	if err != nil {
		return nil, nil, err
	}
	data, err := m.Connect(ctx, params)
	if err != nil {
		return nil, nil, fmt.Errorf("bring up the data session: %w", err)
	}
	client, err := s.o.Pinner.Pin(ctx, info.ID, data)
	if err != nil {
		return nil, nil, fmt.Errorf("pin to %s: %w", data.Interface, err)
	}
	if c.URL != "" {
		dev, err := redirect.Open(ctx, client, redirect.OpenRequest{URL: l.req.URL, StopAt: l.req.StopAt, MaxHops: l.req.MaxHops},
			redirect.Options{MaxHops: s.o.Checks.HopLimit, HopTimeout: s.o.Checks.HopTimeout, Interface: data.Interface})
		return nil, dev, err
	}
	prov := s.o.Providers[c.Provider]
	res, err := prov.Check(ctx, verify.Request{PhoneNumber: c.PhoneNumber, Device: client, Interface: data.Interface,
		Scope: c.Scope, Version: c.Version, Progress: func(ev verify.Event) error {
			cur := l.snapshot()
			cur.Stage = string(ev.Stage)
			if ev.CheckID != "" {
				cur.ProviderCheck = ev.CheckID
			}
			// Only the provider's check id must be durable before the next
			// step (a restart resumes or reports by it); later stages change
			// nothing a restart decides on, so they are not worth an fsync.
			if ev.Stage == verify.StageCreated || ev.CheckID != "" {
				return s.update(l, cur)
			}
			s.setLive(l, cur)
			return nil
		}})
	return res, nil, err
}

// classify turns an error into a catalogue code, a message and the trace so far.
func classify(err error) (code, msg string, trace []verify.Hop) {
	var ve *verify.Error
	var se *modem.StateError
	switch {
	case errors.As(err, &ve):
		code, trace = ve.Code, ve.Trace
		if errors.Is(err, modem.ErrGone) {
			code = verify.CodeModemGone
		}
	case errors.Is(err, modem.ErrGone):
		code = verify.CodeModemGone
	case errors.Is(err, modem.ErrUnsupported):
		code = "unsupported_bearer"
	case errors.Is(err, modem.ErrNoBearer), errors.As(err, &se):
		code = verify.CodeNoBearer
	case errors.Is(err, context.DeadlineExceeded):
		code = "timeout"
	default:
		code = CodeInternal
	}
	return code, verify.RedactText(err.Error()), trace
}

func (s *Scheduler) fail(l *liveCheck, c *Check, code, msg string) {
	fin := time.Now().UTC()
	c.Status, c.FinishedAt = StatusFailed, &fin
	c.Error = &CheckError{Code: code, Message: msg}
	s.finish(l, c)
}

func (s *Scheduler) finish(l *liveCheck, c *Check) {
	if err := s.update(l, c); err != nil {
		s.log.Error("journal write failed for a finished check", "check", c.ID, "err", err)
	}
	s.o.Metrics.CheckFinished(c)
	s.log.Info("check finished", "check", c.ID, "provider", c.Provider, "modem", c.Modem, "status", c.Status,
		"code", checkCode(c))
	close(l.done)
	time.AfterFunc(liveKeep, func() {
		s.mu.Lock()
		delete(s.live, c.ID)
		s.mu.Unlock()
	})
}

func checkCode(c *Check) string {
	if c.Error != nil {
		return c.Error.Code
	}
	if c.Result != nil && c.Result.Result != nil {
		return c.Result.Reason
	}
	return ""
}

// update stores c as the live check, journals it and publishes the event.
func (s *Scheduler) update(l *liveCheck, c *Check) error {
	l.mu.Lock()
	l.check = c
	l.mu.Unlock()
	err := s.o.Journal.Put(c)
	s.publish(c)
	return err
}

// setLive stores c as the live check and publishes it, without journaling.
func (s *Scheduler) setLive(l *liveCheck, c *Check) {
	l.mu.Lock()
	l.check = c
	l.mu.Unlock()
	s.publish(c)
}

func (s *Scheduler) publish(c *Check) {
	if s.o.Hub != nil {
		s.o.Hub.Publish("check.updated", c.forJournal())
	}
}

// forAPI is the check as the API shows it to the caller that made it.
func (c *Check) forAPI() *Check {
	cp := *c
	return &cp
}

// Get returns a check: the live copy while this process has it, else the
// journal's (redacted) record.
func (s *Scheduler) Get(id string) (*Check, *liveCheck, error) {
	s.mu.Lock()
	l := s.live[id]
	s.mu.Unlock()
	if l != nil {
		return l.snapshot(), l, nil
	}
	c, err := s.o.Journal.Get(id)
	if err != nil {
		return nil, nil, err
	}
	if c == nil {
		return nil, nil, &apiError{status: http.StatusNotFound, code: "check_not_found", msg: fmt.Sprintf("no check %q", id)}
	}
	return c, nil, nil
}

// recover finishes what a previous run left: checks that never started are
// interrupted (nothing was spent); running IDlayr v0.1 checks with a
// provider id are resumed by polling; every other running check is
// interrupted with its provider id so it can be reported.
func (s *Scheduler) recover(ctx context.Context) error {
	checks, err := s.o.Journal.Unfinished()
	if err != nil {
		return err
	}
	for _, c := range checks {
		resumer, canResume := s.o.Providers[c.Provider].(verify.Resumer)
		if c.Status == StatusRunning && canResume && c.ProviderCheck != "" && c.Version == "v0.1" &&
			c.Stage != string(verify.StageCodeReceived) {
			s.resume(ctx, c, resumer)
			continue
		}
		msg := "simproofd restarted before the check started; nothing was spent"
		if c.Status == StatusRunning {
			msg = "simproofd restarted during the check"
			if c.ProviderCheck != "" {
				msg += "; provider check id " + c.ProviderCheck
			}
		}
		fin := time.Now().UTC()
		c.Status, c.FinishedAt = StatusInterrupted, &fin
		c.Error = &CheckError{Code: verify.CodeInterrupted, Message: msg}
		if err := s.o.Journal.Put(c); err != nil {
			return err
		}
		s.o.Metrics.CheckFinished(c)
		s.log.Warn("check interrupted by a restart", "check", c.ID, "provider_check_id", c.ProviderCheck)
	}
	return nil
}

func (s *Scheduler) resume(ctx context.Context, c *Check, r verify.Resumer) {
	l := &liveCheck{check: c, done: make(chan struct{})}
	s.mu.Lock()
	s.live[c.ID] = l
	s.mu.Unlock()
	s.log.Info("resuming check after restart", "check", c.ID, "provider_check_id", c.ProviderCheck)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		rctx, cancel := context.WithTimeout(ctx, s.o.Checks.TTLCap)
		defer cancel()
		res, err := r.Resume(rctx, c.ProviderCheck)
		if ctx.Err() != nil {
			return
		}
		cur := l.snapshot()
		if err != nil {
			code, msg, _ := classify(err)
			s.fail(l, cur, code, msg)
			return
		}
		fin := time.Now().UTC()
		cur.Status, cur.FinishedAt, cur.Stage = StatusCompleted, &fin, ""
		cur.Result = &CheckResult{Result: res}
		s.finish(l, cur)
	}()
}
