package notify

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/abitest"
)

// Every NOTIFY_STATUS_* code, NOTIFY_REUSE and NOTIFY_TOKEN_INVALID is the value both SDKs give.
func TestConstantsAreTheSDKs(t *testing.T) {
	mac, err := abitest.Load()
	require.NoError(t, err)
	ios, err := abitest.LoadIOS()
	require.NoError(t, err)
	want := map[string]int64{
		"NOTIFY_STATUS_OK":               int64(StatusOK),
		"NOTIFY_STATUS_INVALID_NAME":     int64(StatusInvalidName),
		"NOTIFY_STATUS_INVALID_TOKEN":    int64(StatusInvalidToken),
		"NOTIFY_STATUS_INVALID_PORT":     int64(StatusInvalidPort),
		"NOTIFY_STATUS_INVALID_FILE":     int64(StatusInvalidFile),
		"NOTIFY_STATUS_INVALID_SIGNAL":   int64(StatusInvalidSignal),
		"NOTIFY_STATUS_INVALID_REQUEST":  int64(StatusInvalidRequest),
		"NOTIFY_STATUS_NOT_AUTHORIZED":   int64(StatusNotAuthorized),
		"NOTIFY_STATUS_OPT_DISABLE":      int64(StatusOptDisable),
		"NOTIFY_STATUS_SERVER_NOT_FOUND": int64(StatusServerNotFound),
		"NOTIFY_STATUS_NULL_INPUT":       int64(StatusNullInput),
		"NOTIFY_STATUS_FAILED":           int64(StatusFailed),
		"NOTIFY_REUSE":                   flagReuse,
		"NOTIFY_TOKEN_INVALID":           tokenInvalid,
	}
	for _, facts := range []*abitest.Facts{mac, ios} {
		n := 0
		for name := range facts.Constants {
			if len(name) > 14 && name[:14] == "NOTIFY_STATUS_" {
				n++
			}
		}
		require.Equal(t, 12, n, "a NOTIFY_STATUS_* code without a Status")
		for name, v := range want {
			got, ok := facts.Constant(name)
			require.True(t, ok, name)
			require.Equal(t, got.String(), json.Number(itoa(v)).String(), name)
		}
	}
	require.Len(t, statusText, 12, "a text for every Status")
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// The kNotify* names are notify_keys.h's, in both SDKs, all 16 of them.
func TestNamesAreTheSDKs(t *testing.T) {
	ours := map[string]string{
		"kNotifyASLDBUpdate":                ASLDBUpdate,
		"kNotifyClockSet":                   ClockSet,
		"kNotifyDSCacheInvalidation":        DSCacheInvalidation,
		"kNotifyDSCacheInvalidationGroup":   DSCacheInvalidationGroup,
		"kNotifyDSCacheInvalidationHost":    DSCacheInvalidationHost,
		"kNotifyDSCacheInvalidationService": DSCacheInvalidationService,
		"kNotifyDSCacheInvalidationUser":    DSCacheInvalidationUser,
		"kNotifySCHostNameChange":           SCHostNameChange,
		"kNotifySCNetworkChange":            SCNetworkChange,
		"kNotifyTimeZoneChange":             TimeZoneChange,
		"kNotifyVFSLowDiskSpace":            VFSLowDiskSpace,
		"kNotifyVFSLowDiskSpaceOtherFS":     VFSLowDiskSpaceOtherFS,
		"kNotifyVFSLowDiskSpaceRootFS":      VFSLowDiskSpaceRootFS,
		"kNotifyVFSMount":                   VFSMount,
		"kNotifyVFSUnmount":                 VFSUnmount,
		"kNotifyVFSUpdate":                  VFSUpdate,
	}
	for _, path := range []string{abitest.Path(), abitest.IOSPath()} {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		var facts struct {
			Strings map[string]string `json:"string_constants"`
		}
		require.NoError(t, json.Unmarshal(b, &facts))
		require.Equal(t, facts.Strings, ours, path)
	}
}
