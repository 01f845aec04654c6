package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"communique/ot"
	"communique/server/servertest"
)

type change struct {
	ID            string
	Old, New      string
	ApprovedStart int `json:"approved_start"`
	ApprovedEnd   int `json:"approved_end"`
	DraftStart    int `json:"draft_start"`
	DraftEnd      int `json:"draft_end"`
	Authors       []string
}

type changeList struct {
	DraftVersion    uint64 `json:"draft_version"`
	ApprovedVersion uint64 `json:"approved_version"`
	Changes         []change
}

func listChanges(t *testing.T, s *servertest.Server, token string) changeList {
	t.Helper()
	var cl changeList
	s.MustDo(t, http.StatusOK, "GET", "/api/summits/seoul-2013/docs/annex-1/changes", token, nil).JSON(t, &cl)
	return cl
}

func findChange(cl changeList, old, new string) *change {
	for i := range cl.Changes {
		if cl.Changes[i].Old == old && cl.Changes[i].New == new {
			return &cl.Changes[i]
		}
	}
	return nil
}

func settleAll(t *testing.T, cs ...*servertest.Client) {
	t.Helper()
	for _, c := range cs {
		if err := c.Settle(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cs {
		if err := c.Pump(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}

// edit applies a string replacement at the first occurrence of old.
func replace(t *testing.T, c *servertest.Client, old, new string) {
	t.Helper()
	runes := []rune(c.Text)
	oldR := []rune(old)
	for i := 0; i+len(oldR) <= len(runes); i++ {
		if string(runes[i:i+len(oldR)]) == old {
			op := ot.Op{}.Retain(i).Insert(new).Delete(len(oldR)).Retain(len(runes) - i - len(oldR))
			if err := c.Edit(op); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%q not in %q", old, c.Text)
}

func TestApprovalWorkflow(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	s.Summit(t, "seoul-2013")
	initial := "Participants agreed that an open cyberspace supports growth in every region. Capacity building matters."
	s.Doc(t, "seoul-2013", "annex-1", initial)
	chair := s.Token(t, "seoul-2013", "chair", "")
	kor := s.Token(t, "seoul-2013", "delegate", "KOR")
	gbr := s.Token(t, "seoul-2013", "delegate", "GBR")
	hun := s.Token(t, "seoul-2013", "delegate", "HUN")
	obs := s.Token(t, "seoul-2013", "observer", "")

	ck := s.NewClient(t, "seoul-2013", "annex-1", kor, "kor")
	cg := s.NewClient(t, "seoul-2013", "annex-1", gbr, "gbr")
	ch := s.NewClient(t, "seoul-2013", "annex-1", hun, "hun")
	replace(t, ck, "open", "open and secure")
	settleAll(t, ck, cg, ch)
	replace(t, cg, "growth", "inclusive growth")
	settleAll(t, ck, cg, ch)
	replace(t, ch, " Capacity building matters.", "")
	settleAll(t, ck, cg, ch)

	cl := listChanges(t, s, kor)
	if len(cl.Changes) != 3 {
		t.Fatalf("changes = %+v; want 3", cl.Changes)
	}
	for _, tc := range []struct {
		old, new string
		authors  []string
	}{
		{"", "and secure ", []string{"KOR"}},
		{"", "inclusive ", []string{"GBR"}},
		{" Capacity building matters.", "", []string{"HUN"}},
	} {
		c := findChange(cl, tc.old, tc.new)
		if c == nil {
			t.Fatalf("no change %q -> %q in %+v", tc.old, tc.new, cl.Changes)
		}
		if !slices.Equal(c.Authors, tc.authors) {
			t.Errorf("change %q -> %q authors %v; want %v", tc.old, tc.new, c.Authors, tc.authors)
		}
	}

	// Observers may not list changes; delegates may not decide.
	s.MustDo(t, http.StatusForbidden, "GET", "/api/summits/seoul-2013/docs/annex-1/changes", obs, nil)
	gc := findChange(cl, "", "inclusive ")
	s.MustDo(t, http.StatusForbidden, "POST", "/api/summits/seoul-2013/docs/annex-1/changes/"+gc.ID+"/approve", kor, nil)
	s.MustDo(t, http.StatusForbidden, "POST", "/api/summits/seoul-2013/docs/annex-1/adopt", kor, nil)

	// An observer follows the approved stream.
	oc, _, err := s.Dial("seoul-2013", "annex-1", obs, url.Values{"stream": {"approved"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hello := oc.Expect(t, "hello")
	approvedText := *hello.Text

	// An unrelated edit moves GBR's change; its id stays.
	replace(t, ck, "Participants", "All participants")
	settleAll(t, ck, cg, ch)
	cl2 := listChanges(t, s, chair)
	if c := findChange(cl2, "", "inclusive "); c == nil || c.ID != gc.ID || c.DraftStart == gc.DraftStart {
		t.Fatalf("GBR's change after an edit elsewhere: %+v; want id %s at a new position", c, gc.ID)
	}

	// Approve it: the observer sees the op and ends with the approved text.
	r := s.MustDo(t, http.StatusOK, "POST", "/api/summits/seoul-2013/docs/annex-1/changes/"+gc.ID+"/approve", chair, nil)
	var dv struct {
		DraftVersion    uint64 `json:"draft_version"`
		ApprovedVersion uint64 `json:"approved_version"`
	}
	r.JSON(t, &dv)
	if dv.ApprovedVersion != 1 {
		t.Fatalf("approved version %d; want 1", dv.ApprovedVersion)
	}
	f := oc.Expect(t, "op")
	op, err := ot.Parse(f.Op)
	if err != nil {
		t.Fatal(err)
	}
	if approvedText, err = ot.Apply(approvedText, op); err != nil {
		t.Fatal(err)
	}
	d := s.GetDoc(t, "seoul-2013", "annex-1", obs)
	if d.Approved.Text != approvedText || d.Draft != nil {
		t.Fatalf("observer sees approved %q (draft %v); followed %q", d.Approved.Text, d.Draft, approvedText)
	}
	if want := "Participants agreed that an open cyberspace supports inclusive growth in every region. Capacity building matters."; approvedText != want {
		t.Fatalf("approved = %q; want %q", approvedText, want)
	}
	// Deciding the same id again is a conflict.
	if got := s.Do(t, "POST", "/api/summits/seoul-2013/docs/annex-1/changes/"+gc.ID+"/approve", chair, nil); got.Status != http.StatusConflict {
		t.Fatalf("second approval: %d %s; want 409", got.Status, got.Body)
	}

	// Reject HUN's deletion: drafters get the chair's op putting it back.
	cl3 := listChanges(t, s, chair)
	hc := findChange(cl3, " Capacity building matters.", "")
	s.MustDo(t, http.StatusOK, "POST", "/api/summits/seoul-2013/docs/annex-1/changes/"+hc.ID+"/reject", chair, nil)
	f = ck.Conn.Expect(t, "op")
	if f.Author != "chair" {
		t.Fatalf("rejection op author %q; want chair", f.Author)
	}
	if err := ck.Handle(f); err != nil {
		t.Fatal(err)
	}
	settleAll(t, ck, cg, ch)

	// Adoption waits for the last pending changes.
	if got := s.Do(t, "POST", "/api/summits/seoul-2013/docs/annex-1/adopt", chair, nil); got.Status != http.StatusConflict {
		t.Fatalf("adopt with pending changes: %d %s; want 409", got.Status, got.Body)
	}
	// Attribution survives a restart.
	before := listChanges(t, s, chair)
	s.Restart(t)
	after := listChanges(t, s, chair)
	if len(before.Changes) != len(after.Changes) {
		t.Fatalf("changes before restart %+v; after %+v", before.Changes, after.Changes)
	}
	for i := range before.Changes {
		if before.Changes[i].ID != after.Changes[i].ID || !slices.Equal(before.Changes[i].Authors, after.Changes[i].Authors) {
			t.Fatalf("change %d before restart %+v; after %+v", i, before.Changes[i], after.Changes[i])
		}
	}
	s.MustDo(t, http.StatusOK, "POST", "/api/summits/seoul-2013/docs/annex-1/changes/approve-all", chair,
		map[string]any{"draft_version": after.DraftVersion, "approved_version": after.ApprovedVersion})
	if cl := listChanges(t, s, chair); len(cl.Changes) != 0 {
		t.Fatalf("after approve-all: %+v", cl.Changes)
	}
	s.MustDo(t, http.StatusOK, "POST", "/api/summits/seoul-2013/docs/annex-1/adopt", chair, map[string]string{"name": "Seoul Framework, as adopted"})
	d = s.GetDoc(t, "seoul-2013", "annex-1", chair)
	if !d.Adopted || d.Approved.Text != d.Draft.Text {
		t.Fatalf("after adopt: %+v", d)
	}
	// Frozen: HTTP and WebSocket edits are refused with adopted.
	got := s.Do(t, "PUT", "/api/summits/seoul-2013/docs/annex-1/draft", kor, map[string]any{"base_version": d.Draft.Version, "text": "x"})
	if got.Status != http.StatusConflict || got.ErrorCode() != "adopted" {
		t.Fatalf("PUT after adoption: %d %s; want 409 adopted", got.Status, got.Body)
	}
	k2 := s.NewClient(t, "seoul-2013", "annex-1", kor, "kor2")
	if err := k2.Conn.Send(map[string]any{"type": "op", "version": k2.Version, "op": []any{"x", ot.NewText(k2.Text).Len()}, "src": "kor2", "seq": 1}); err != nil {
		t.Fatal(err)
	}
	if f := k2.Conn.Expect(t, "error"); f.Code != "adopted" {
		t.Fatalf("op after adoption: %s; want adopted", f.Raw)
	}
	if d2 := s.GetDoc(t, "seoul-2013", "annex-1", chair); d2.Draft.Version != d.Draft.Version || d2.Draft.Text != d.Draft.Text {
		t.Fatalf("document changed after adoption")
	}
}
