package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
)

func newBackupCmd(s streams) *cobra.Command {
	var dataDir, out, server, tokenFile, caFile string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write a consistent backup of a store: every retained revision, the history, filters and alerts",
		Long: `Write a backup of kiem's store to a file: every retained revision, the change log, and kiem's own records
(saved filters, alerts, the delivery outbox). The backup is one consistent moment of the store.

Of a stopped store: --data-dir. Of a serving kiem (no need to stop it): --server URL, with an admin token read
from --token-file or $KIEM_TOKEN; commits go on while it streams. Restore with 'kiem restore'.`,
		Example: `  kiem backup --data-dir /var/lib/kiem -o kiem.backup
  KIEM_TOKEN=... kiem backup --server https://kiem.example.com:8080 --certificate-authority ca.pem -o kiem.backup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("-o FILE is required (a backup is binary: it is never written to a terminal)")
			}
			if server != "" {
				if dataDir != "" {
					return errors.New("--server and --data-dir exclude each other")
				}
				return backupFromServer(cmd.Context(), s, server, tokenFile, caFile, out)
			}
			return backupStopped(cmd.Context(), s, dataDir, out)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "", "directory of a stopped store (default: as kiem serve)")
	fl.StringVarP(&out, "output-file", "o", "", "file to write the backup to (required)")
	fl.StringVar(&server, "server", "", "URL of a serving kiem to back up, e.g. https://kiem.example.com:8080")
	fl.StringVar(&tokenFile, "token-file", "", "with --server: file holding an admin token (default: $KIEM_TOKEN)")
	fl.StringVar(&caFile, "certificate-authority", "", "with an https --server: PEM file of the CA that signed its certificate (default: the system's)")
	return cmd
}

func backupStopped(ctx context.Context, s streams, dataDir, out string) error {
	if dataDir == "" {
		var err error
		if dataDir, err = defaultDataDir(); err != nil {
			return err
		}
	}
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dataDir})
	if err != nil {
		return fmt.Errorf("open store %s: %w", dataDir, err)
	}
	defer st.Close()
	var info graph.BackupInfo
	err = writeTo(out, s.out, func(w io.Writer) error {
		var err error
		info, err = st.Backup(ctx, w)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "kiem: backup of %s at revision %d (horizon %d) written to %s\n", dataDir, info.Head, info.Horizon, out)
	return nil
}

func backupFromServer(ctx context.Context, s streams, server, tokenFile, caFile, out string) error {
	token := os.Getenv("KIEM_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return errors.New("--server needs an admin token: --token-file FILE or $KIEM_TOKEN")
	}
	// No client timeout: a backup of a large store streams for as long as it takes; ctx bounds it.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--certificate-authority %s: no PEM certificate in it", caFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("backup from %s: %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("backup from %s: HTTP %d: %s", server, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	n := int64(0)
	err = writeTo(out, s.out, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, resp.Body)
		if err == nil && resp.Trailer.Get("Kiem-Backup-Error") != "" {
			err = fmt.Errorf("the server failed mid-backup: %s", resp.Trailer.Get("Kiem-Backup-Error"))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("backup from %s: %w", server, err)
	}
	fmt.Fprintf(s.err, "kiem: backup of %s (revision %s, %d bytes) written to %s\n", server, resp.Header.Get("Kiem-Backup-Head"), n, out)
	return nil
}

func newRestoreCmd(s streams) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Create a store from a backup that 'kiem backup' wrote",
		Long: `Create the store in --data-dir from a backup. The directory must not exist or be empty: a restore never
overwrites a store. The restored store is opened and checked before the command succeeds; a failed restore
leaves nothing behind. A backup of another store schema is refused with the versions involved.`,
		Example: `  kiem restore --data-dir /var/lib/kiem-restored kiem.backup
  kiem serve --data-dir /var/lib/kiem-restored ...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return errors.New("--data-dir is required: the new store's directory (it must not exist or be empty)")
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			start := time.Now()
			log := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
			info, err := graph.RestoreStore(cmd.Context(), dataDir, f, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.err, "kiem: restored revision %d (horizon %d, backed up %s) into %s in %s\n",
				info.Head, info.Horizon, info.Created.Format(time.RFC3339), dataDir, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "directory of the new store (required; must not exist or be empty)")
	return cmd
}

// backupHandler streams a backup of the serving store to an admin. The status is sent before the data; a
// failure mid-stream is reported in the Kiem-Backup-Error trailer (and the gzip stream is left incomplete, so a
// restore of it fails rather than yielding half a store).
func backupHandler(st *graph.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := auth.RequireAdmin(r.Context()); err != nil {
			http.Error(w, strings.Replace(err.Error(), "mutations need", "backups need", 1), http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="kiem.backup"`)
		w.Header().Set("Kiem-Backup-Head", fmt.Sprint(st.Head()))
		w.Header().Set("Trailer", "Kiem-Backup-Error")
		start := time.Now()
		info, err := st.Backup(r.Context(), w)
		if err != nil {
			w.Header().Set("Kiem-Backup-Error", err.Error())
			log.Error("backup failed", "err", err)
			return
		}
		p, _ := auth.PrincipalFrom(r.Context())
		log.Info("backup served", "user", p.User, "revision", info.Head, "took", time.Since(start))
	})
}
