package indexer

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// AuditHandler receives the kube-apiserver's audit webhook: POST of an audit.k8s.io/v1 EventList. It answers
// 200 once the batch is durably ingested, so that the apiserver's retry of a failed batch never loses events
// (a retry of an ingested batch changes nothing); 400 for a body that is not an EventList (a retry would not
// help); 503 when the store could not take the batch (the apiserver retries). Malformed items are counted and
// logged, and the rest of the batch is ingested. Authentication is the caller's (see auth.AuditMiddleware).
func AuditHandler(in *AuditIngester, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST an audit.k8s.io/v1 EventList", http.StatusMethodNotAllowed)
			return
		}
		events, malformed, err := DecodeEventList(r.Body)
		if err != nil {
			log.Warn("audit batch refused", "remote", r.RemoteAddr, "err", err)
			in.stats.malformed.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := in.Ingest(r.Context(), events, malformed, nil); err != nil {
			log.Error("audit batch not ingested; the apiserver will retry it", "events", len(events), "err", err)
			http.Error(w, "audit batch not stored; retry", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Accepted  int `json:"accepted"`
			Malformed int `json:"malformed"`
		}{len(events), len(malformed)})
	})
}
