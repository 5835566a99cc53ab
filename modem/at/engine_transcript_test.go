package at_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/modem/at"
)

// A transcript (testdata/transcripts/*.txt) is a dialogue with a modem:
//
//	# comment
//	chunk N            the modem writes its replies N bytes at a time
//	maxline N          Options.MaxLine
//	subscribe [P ...]  subscribe to URCs (all, or these prefixes)
//	cmd AT+X           the test sends this command (starts a step)
//	reply "..."        the modem answers with these bytes (a Go string
//	                   literal); several reply lines are several writes
//	line TEXT          an information line the command must return
//	result R           ok | error | cme CODE TEXT | cms CODE TEXT |
//	                   no-carrier | busy | no-answer | no-dialtone
//	urc TEXT           a URC the subscriber must receive (in order)
//	stats k=v ...      counters at the end: garbage overlong stray dropped
type transcript struct {
	chunk      int
	maxLine    int
	subscribe  []string
	subscribed bool
	steps      []step
	urcs       []string
	stats      map[string]uint64
}

type step struct {
	cmd    string
	reply  []string
	lines  []string
	result string
	line   int // in the file, for messages
}

func parseTranscript(path string) (*transcript, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := &transcript{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, arg, _ := strings.Cut(text, " ")
		var cur *step
		if len(tr.steps) > 0 {
			cur = &tr.steps[len(tr.steps)-1]
		}
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s", path, n, why) }
		switch key {
		case "chunk", "maxline":
			v, err := strconv.Atoi(arg)
			if err != nil {
				return nil, bad(err.Error())
			}
			if key == "chunk" {
				tr.chunk = v
			} else {
				tr.maxLine = v
			}
		case "subscribe":
			tr.subscribed = true
			tr.subscribe = strings.Fields(arg)
		case "cmd":
			tr.steps = append(tr.steps, step{cmd: arg, line: n})
		case "reply", "line", "result":
			if cur == nil {
				return nil, bad(key + " before cmd")
			}
			switch key {
			case "reply":
				s, err := strconv.Unquote(arg)
				if err != nil {
					return nil, bad("reply: " + err.Error())
				}
				cur.reply = append(cur.reply, s)
			case "line":
				cur.lines = append(cur.lines, arg)
			case "result":
				cur.result = arg
			}
		case "urc":
			tr.urcs = append(tr.urcs, arg)
		case "stats":
			tr.stats = map[string]uint64{}
			for _, kv := range strings.Fields(arg) {
				k, v, _ := strings.Cut(kv, "=")
				u, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return nil, bad("stats: " + err.Error())
				}
				tr.stats[k] = u
			}
		default:
			return nil, bad("unknown directive " + key)
		}
	}
	return tr, sc.Err()
}

// checkResult compares a Command error with a transcript's result.
func checkResult(err error, want string) error {
	kind, rest, _ := strings.Cut(want, " ")
	sentinel := map[string]error{
		"error": at.ErrError, "no-carrier": at.ErrNoCarrier, "busy": at.ErrBusy,
		"no-answer": at.ErrNoAnswer, "no-dialtone": at.ErrNoDialtone,
	}
	switch kind {
	case "ok":
		if err != nil {
			return fmt.Errorf("got error %v, want ok", err)
		}
	case "cme", "cms":
		codeText, text, _ := strings.Cut(rest, " ")
		code, _ := strconv.Atoi(codeText)
		var gotCode int
		var gotText string
		var cme *at.CMEError
		var cms *at.CMSError
		switch {
		case kind == "cme" && errors.As(err, &cme):
			gotCode, gotText = cme.Code, cme.Text
		case kind == "cms" && errors.As(err, &cms):
			gotCode, gotText = cms.Code, cms.Text
		default:
			return fmt.Errorf("got %v, want a %s error", err, kind)
		}
		if gotCode != code || gotText != text {
			return fmt.Errorf("got %s code %d text %q, want %d %q", kind, gotCode, gotText, code, text)
		}
	default:
		s, ok := sentinel[kind]
		if !ok {
			return fmt.Errorf("unknown result %q", want)
		}
		if !errors.Is(err, s) {
			return fmt.Errorf("got %v, want %v", err, s)
		}
	}
	return nil
}

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			tr, err := parseTranscript(path)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			next := 0
			fm := &fakeModem{chunk: tr.chunk, parts: func(cmd string) []string {
				mu.Lock()
				defer mu.Unlock()
				if next >= len(tr.steps) || tr.steps[next].cmd != cmd {
					return []string{"\r\nERROR\r\n"} // the test fails below on the mismatch
				}
				next++
				return tr.steps[next-1].reply
			}}
			e := fm.start(t, at.Options{Timeout: wait, MaxLine: tr.maxLine})
			var urcs <-chan at.URC
			if tr.subscribed {
				urcs, _ = e.Subscribe(tr.subscribe...)
			}
			for _, st := range tr.steps {
				lines, err := e.Command(context.Background(), st.cmd)
				if got := fm.nextSeen(t); got != st.cmd {
					t.Fatalf("line %d: modem received %q, want %q", st.line, got, st.cmd)
				}
				if err := checkResult(err, st.result); err != nil {
					t.Errorf("line %d: %s: %v", st.line, st.cmd, err)
				}
				if err != nil && !strings.HasPrefix(err.Error(), st.cmd+": ") {
					t.Errorf("line %d: error %q does not name the command", st.line, err)
				}
				if !reflect.DeepEqual(lines, st.lines) {
					t.Errorf("line %d: %s: lines\n got %q\nwant %q", st.line, st.cmd, lines, st.lines)
				}
			}
			for i, want := range tr.urcs {
				select {
				case u := <-urcs:
					if u.Line != want {
						t.Errorf("URC %d: got %q, want %q", i, u.Line, want)
					}
					if u.Time.IsZero() {
						t.Errorf("URC %d has no time", i)
					}
				case <-time.After(wait):
					t.Fatalf("URC %d (%q) never arrived", i, want)
				}
			}
			if urcs != nil {
				select {
				case u := <-urcs:
					t.Errorf("unexpected URC %q", u.Line)
				default:
				}
			}
			st := e.Stats()
			got := map[string]uint64{
				"garbage": st.GarbageBytes, "overlong": st.OverlongLines,
				"stray": st.StrayLines, "dropped": st.URCsDropped,
			}
			for k, want := range tr.stats {
				if got[k] != want {
					t.Errorf("stats %s = %d, want %d", k, got[k], want)
				}
			}
		})
	}
}
