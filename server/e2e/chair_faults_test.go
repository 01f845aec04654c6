package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
)

// TestChairFaults covers FAULTS.md cases 17–19 for the chair's office:
// observers may not edit or decide, delegates may not decide or adopt, and
// a decision on an id that is not pending on this document — unknown,
// already decided, or another document's — is 409. After each refusal
// both streams of both documents are exactly as before and a follower of
// the draft received nothing.
func TestChairFaults(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	s.Summit(t, "seoul-2013")
	s.Doc(t, "seoul-2013", "annex-1", "Participants agreed that an open cyberspace supports growth.")
	s.Doc(t, "seoul-2013", "annex-2", "Capacity building matters to every region.")
	chair := s.Token(t, "seoul-2013", "chair", "")
	kor := s.Token(t, "seoul-2013", "delegate", "KOR")
	obs := s.Token(t, "seoul-2013", "observer", "")
	A1, A2 := chrDocPath("annex-1"), chrDocPath("annex-2")

	// Pending changes on both documents; one of annex-1's is then decided.
	s.MustDo(t, http.StatusOK, "PUT", A1+"/draft", kor, map[string]any{"base_version": 0,
		"text": "Participants firmly agreed that an open and secure cyberspace supports growth."})
	s.MustDo(t, http.StatusOK, "PUT", A2+"/draft", kor, map[string]any{"base_version": 0,
		"text": "Capacity building matters greatly to every region."})
	var c1, c2 chrChanges
	if err := chrGet(s, A1+"/changes", chair, &c1); err != nil {
		t.Fatal(err)
	}
	if err := chrGet(s, A2+"/changes", chair, &c2); err != nil {
		t.Fatal(err)
	}
	if len(c1.Changes) != 2 || len(c2.Changes) != 1 {
		t.Fatalf("changes %+v and %+v; want 2 and 1", c1.Changes, c2.Changes)
	}
	decided, pending, other := c1.Changes[0].ID, c1.Changes[1].ID, c2.Changes[0].ID
	s.MustDo(t, http.StatusOK, "POST", A1+"/changes/"+decided+"/approve", chair, nil)

	// A follower of annex-1's draft must see nothing while refusals happen.
	watch := s.NewClient(t, "seoul-2013", "annex-1", chair, "watcher")

	state := func() [2]servertest.DocState {
		return [2]servertest.DocState{s.GetDoc(t, "seoul-2013", "annex-1", chair), s.GetDoc(t, "seoul-2013", "annex-2", chair)}
	}
	before := state()

	type attempt struct {
		name   string
		method string
		path   string
		token  string
		body   any
		status int
		code   string
	}
	put := map[string]any{"base_version": before[0].Draft.Version, "text": "Nothing agreed."}
	var tests []attempt
	for _, who := range []struct {
		name, token string
	}{{"observer", obs}, {"delegate", kor}} {
		tests = append(tests,
			attempt{who.name + " approves", "POST", A1 + "/changes/" + pending + "/approve", who.token, nil, 403, "forbidden"},
			attempt{who.name + " rejects", "POST", A1 + "/changes/" + pending + "/reject", who.token, nil, 403, "forbidden"},
			attempt{who.name + " approves all", "POST", A1 + "/changes/approve-all", who.token, nil, 403, "forbidden"},
			attempt{who.name + " rejects all", "POST", A1 + "/changes/reject-all", who.token, nil, 403, "forbidden"},
			attempt{who.name + " adopts", "POST", A1 + "/adopt", who.token, nil, 403, "forbidden"},
			attempt{who.name + " renames", "PATCH", A1, who.token, map[string]string{"title": "Mine"}, 403, "forbidden"},
			attempt{who.name + " reorders", "PUT", "/api/summits/seoul-2013/order", who.token, map[string]any{"ids": []string{"annex-2", "annex-1"}}, 403, "forbidden"},
		)
	}
	tests = append(tests,
		attempt{"observer PUTs the draft", "PUT", A1 + "/draft", obs, put, 403, "forbidden"},
		attempt{"observer lists changes", "GET", A1 + "/changes", obs, nil, 403, "forbidden"},
		attempt{"approve an unknown id", "POST", A1 + "/changes/ch_0000000000000000/approve", chair, nil, 409, "conflict"},
		attempt{"reject an unknown id", "POST", A1 + "/changes/ch_0000000000000000/reject", chair, nil, 409, "conflict"},
		attempt{"approve a decided id", "POST", A1 + "/changes/" + decided + "/approve", chair, nil, 409, "conflict"},
		attempt{"reject a decided id", "POST", A1 + "/changes/" + decided + "/reject", chair, nil, 409, "conflict"},
		attempt{"approve another document's id", "POST", A1 + "/changes/" + other + "/approve", chair, nil, 409, "conflict"},
		attempt{"reject another document's id", "POST", A1 + "/changes/" + other + "/reject", chair, nil, 409, "conflict"},
		attempt{"approve annex-1's id on annex-2", "POST", A2 + "/changes/" + pending + "/approve", chair, nil, 409, "conflict"},
		attempt{"approve all at stale versions", "POST", A1 + "/changes/approve-all", chair,
			map[string]any{"draft_version": before[0].Draft.Version - 1, "approved_version": before[0].Approved.Version}, 409, "conflict"},
		attempt{"adopt while changes are pending", "POST", A1 + "/adopt", chair, nil, 409, "conflict"},
	)
	check := func(name string) {
		t.Helper()
		if after := state(); !reflect.DeepEqual(after, before) {
			t.Errorf("%s changed the documents:\n%s\nwant\n%s", name, chrStates(after), chrStates(before))
		}
		if f, err := watch.Conn.Next(20 * time.Millisecond); err == nil {
			t.Errorf("%s: the draft's follower received %s", name, f.Raw)
		}
	}
	for _, tc := range tests {
		r := s.Do(t, tc.method, tc.path, tc.token, tc.body)
		if r.Status != tc.status || r.ErrorCode() != tc.code {
			t.Errorf("%s: %d %s; want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
		}
		check(tc.name)
	}

	// Over the socket: observers cannot open the draft, and an op on the
	// approved stream — observer's or delegate's — is refused.
	if _, resp, err := s.Dial("seoul-2013", "annex-1", obs, url.Values{"stream": {"draft"}}, nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("observer opening the draft: %v; want 403", err)
	}
	check("observer opening the draft")
	for _, who := range []struct{ name, token string }{{"observer", obs}, {"delegate", kor}} {
		c, _, err := s.Dial("seoul-2013", "annex-1", who.token, url.Values{"stream": {"approved"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		hello := c.Expect(t, "hello")
		n := ot.NewText(*hello.Text).Len()
		if err := c.Send(map[string]any{"type": "op", "version": hello.Version, "op": []any{"x", n}, "src": "x" + who.name, "seq": 1}); err != nil {
			t.Fatal(err)
		}
		if f := c.Expect(t, "error"); f.Code != "forbidden" {
			t.Errorf("%s's op on the approved stream: %s; want forbidden", who.name, f.Raw)
		}
		c.Close()
		check(who.name + " sending an op on the approved stream")
	}

	// The refusals left the decisions record alone, and the pending id is
	// still decidable.
	var decs []chrDecision
	if err := chrGet(s, A1+"/decisions", chair, &decs); err != nil {
		t.Fatal(err)
	}
	if len(decs) != 1 || decs[0].Change != decided {
		t.Errorf("decisions %+v; want only the approval of %s", decs, decided)
	}
	r := s.MustDo(t, http.StatusOK, "POST", A1+"/changes/"+pending+"/reject", chair, nil)
	if !strings.Contains(string(r.Body), pending) {
		t.Errorf("reject answer %s; want it to list %s as decided", r.Body, pending)
	}
}

func chrStates(ds [2]servertest.DocState) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s: draft %d %q, approved %d %q, adopted %v\n", d.ID, d.Draft.Version, d.Draft.Text, d.Approved.Version, d.Approved.Text, d.Adopted)
	}
	return b.String()
}
