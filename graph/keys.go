package graph

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Key layout of the versioned store. Every key starts with a one-byte prefix and a '|'; numbers are big-endian
// and fixed-width, so byte order is numeric order; the strings of an object key end with a 0x00 byte each (no
// Kubernetes name, namespace or kind holds one), written ∅ below.
//
//	o|<kind>∅<ns>∅<name>∅      object, versioned: version R holds MarshalObject(o) as of revision R, a
//	                           Badger delete at version R means "deleted in R". Read at revision R.
//	c|<rev:8>|<seq:4>          change log: the seq-th change of revision rev (JSON changeValue).
//	r|<rev:8>                  revision info (JSON revisionValue). The set of r| keys is the set of revisions.
//	t|<unixnano:8>|<rev:8>     time index, empty value. Wall times are monotonic across revisions (see Commit),
//	                           so time order is revision order.
//	m|head                     head revision (8 bytes), written last in every revision.
//	m|ts                       newest timestamp used by a write that is not a revision (8 bytes), see below.
//	m|horizon                  oldest readable revision (8 bytes).
//	m|schema                   schema version of this layout (4 bytes), see storeSchema.
//
// Only o| keys are read at a past version. c|, r|, t| and m| are plain keys, read at the newest timestamp
// written; retention deletes the c|, r| and t| keys of the revisions below the horizon outright.
//
// Timestamps: every write, revision or not, commits at a fresh timestamp above every earlier one. A revision
// commits at ts = its number; a non-revision write (SetActor, retention's deletes, the repair of an interrupted
// revision) commits at a ts that is no revision and records it in m|ts. m|head and m|ts are written by the last
// transaction of their write, after all the others succeeded. So every version at or below max(m|head, m|ts)
// belongs to a finished write, and any version above it is the remnant of a write cut short (see repairLocked).
const (
	prefixObject   = 'o'
	prefixChange   = 'c'
	prefixRevision = 'r'
	prefixTime     = 't'
	prefixMeta     = 'm'
	keySep         = '|'
	fieldEnd       = 0x00
)

// storeSchema is the version of the key layout and value encodings. Bump it on any incompatible change; a
// store written with another version refuses to open (ErrIncompatibleStore).
const storeSchema uint32 = 1

var (
	keyHead    = []byte("m|head")
	keyTS      = []byte("m|ts")
	keyHorizon = []byte("m|horizon")
	keySchema  = []byte("m|schema")

	objectsPrefix   = []byte{prefixObject, keySep}
	changesPrefix   = []byte{prefixChange, keySep}
	revisionsPrefix = []byte{prefixRevision, keySep}
	timesPrefix     = []byte{prefixTime, keySep}
)

// objectKey returns the o| key of ref. It fails for names holding a 0x00 byte, which would make keys ambiguous.
func objectKey(ref ObjectRef) ([]byte, error) {
	for _, s := range [...]string{string(ref.Kind), ref.Namespace, ref.Name} {
		if strings.IndexByte(s, fieldEnd) >= 0 {
			return nil, fmt.Errorf("object key %s: name holds a 0x00 byte", ref)
		}
	}
	if ref.Kind == "" || ref.Name == "" {
		return nil, fmt.Errorf("object key %q: kind and name are required", ref)
	}
	k := make([]byte, 0, 2+len(ref.Kind)+len(ref.Namespace)+len(ref.Name)+3)
	k = append(k, prefixObject, keySep)
	k = append(k, ref.Kind...)
	k = append(k, fieldEnd)
	k = append(k, ref.Namespace...)
	k = append(k, fieldEnd)
	k = append(k, ref.Name...)
	return append(k, fieldEnd), nil
}

// parseObjectKey is the inverse of objectKey.
func parseObjectKey(k []byte) (ObjectRef, error) {
	if !bytes.HasPrefix(k, objectsPrefix) {
		return ObjectRef{}, fmt.Errorf("object key %q: bad prefix", k)
	}
	parts := bytes.Split(k[len(objectsPrefix):], []byte{fieldEnd})
	if len(parts) != 4 || len(parts[3]) != 0 {
		return ObjectRef{}, fmt.Errorf("object key %q: want 3 fields", k)
	}
	return ObjectRef{Kind: Kind(parts[0]), Namespace: string(parts[1]), Name: string(parts[2])}, nil
}

// changeKey returns c|<rev:8>|<seq:4>.
func changeKey(rev Revision, seq int) []byte {
	k := make([]byte, 0, 15)
	k = append(k, prefixChange, keySep)
	k = binary.BigEndian.AppendUint64(k, uint64(rev))
	k = append(k, keySep)
	return binary.BigEndian.AppendUint32(k, uint32(seq))
}

// parseChangeKey is the inverse of changeKey.
func parseChangeKey(k []byte) (Revision, int, error) {
	if len(k) != 15 || !bytes.HasPrefix(k, changesPrefix) {
		return 0, 0, fmt.Errorf("change key %q: bad shape", k)
	}
	return Revision(binary.BigEndian.Uint64(k[2:10])), int(binary.BigEndian.Uint32(k[11:])), nil
}

// revisionKey returns r|<rev:8>.
func revisionKey(rev Revision) []byte {
	k := make([]byte, 0, 10)
	k = append(k, prefixRevision, keySep)
	return binary.BigEndian.AppendUint64(k, uint64(rev))
}

// parseRevisionKey is the inverse of revisionKey.
func parseRevisionKey(k []byte) (Revision, error) {
	if len(k) != 10 || !bytes.HasPrefix(k, revisionsPrefix) {
		return 0, fmt.Errorf("revision key %q: bad shape", k)
	}
	return Revision(binary.BigEndian.Uint64(k[2:])), nil
}

// timeKey returns t|<unixnano:8>|<rev:8>. Times before 1970 count as 1970.
func timeKey(t time.Time, rev Revision) []byte {
	k := make([]byte, 0, 19)
	k = append(k, prefixTime, keySep)
	k = binary.BigEndian.AppendUint64(k, unixNano(t))
	k = append(k, keySep)
	return binary.BigEndian.AppendUint64(k, uint64(rev))
}

// parseTimeKey is the inverse of timeKey.
func parseTimeKey(k []byte) (int64, Revision, error) {
	if len(k) != 19 || !bytes.HasPrefix(k, timesPrefix) {
		return 0, 0, fmt.Errorf("time key %q: bad shape", k)
	}
	return int64(binary.BigEndian.Uint64(k[2:10])), Revision(binary.BigEndian.Uint64(k[11:])), nil
}

func unixNano(t time.Time) uint64 {
	if n := t.UnixNano(); n > 0 {
		return uint64(n)
	}
	return 0
}

func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("want 8 bytes, have %d", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
