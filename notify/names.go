package notify

// The well-known names of <notify_keys.h> (kNotify*), as the macOS 13.3 and iOS 17.5 SDKs define
// them (checked by the tests against both SDKs' facts). The system posts them; any process may
// watch them. On Linux nothing posts them but the programs that use this package.
const (
	// ASLDBUpdate is kNotifyASLDBUpdate, "com.apple.system.logger.message": a message was
	// written to the system log database.
	ASLDBUpdate = "com.apple.system.logger.message"
	// ClockSet is kNotifyClockSet, "com.apple.system.clock_set": the system clock was set.
	ClockSet = "com.apple.system.clock_set"
	// DSCacheInvalidation is kNotifyDSCacheInvalidation,
	// "com.apple.system.DirectoryService.InvalidateCache": directory-service caches are stale.
	DSCacheInvalidation = "com.apple.system.DirectoryService.InvalidateCache"
	// DSCacheInvalidationGroup is kNotifyDSCacheInvalidationGroup,
	// "com.apple.system.DirectoryService.InvalidateCache.group".
	DSCacheInvalidationGroup = "com.apple.system.DirectoryService.InvalidateCache.group"
	// DSCacheInvalidationHost is kNotifyDSCacheInvalidationHost,
	// "com.apple.system.DirectoryService.InvalidateCache.host".
	DSCacheInvalidationHost = "com.apple.system.DirectoryService.InvalidateCache.host"
	// DSCacheInvalidationService is kNotifyDSCacheInvalidationService,
	// "com.apple.system.DirectoryService.InvalidateCache.service".
	DSCacheInvalidationService = "com.apple.system.DirectoryService.InvalidateCache.service"
	// DSCacheInvalidationUser is kNotifyDSCacheInvalidationUser,
	// "com.apple.system.DirectoryService.InvalidateCache.user".
	DSCacheInvalidationUser = "com.apple.system.DirectoryService.InvalidateCache.user"
	// SCHostNameChange is kNotifySCHostNameChange, "com.apple.system.hostname": the host name
	// changed.
	SCHostNameChange = "com.apple.system.hostname"
	// SCNetworkChange is kNotifySCNetworkChange, "com.apple.system.config.network_change": the
	// network configuration changed.
	SCNetworkChange = "com.apple.system.config.network_change"
	// TimeZoneChange is kNotifyTimeZoneChange, "com.apple.system.timezone": the time zone
	// changed.
	TimeZoneChange = "com.apple.system.timezone"
	// VFSLowDiskSpace is kNotifyVFSLowDiskSpace, "com.apple.system.lowdiskspace": a volume is
	// low on space.
	VFSLowDiskSpace = "com.apple.system.lowdiskspace"
	// VFSLowDiskSpaceOtherFS is kNotifyVFSLowDiskSpaceOtherFS,
	// "com.apple.system.lowdiskspace.user": a volume other than the root is low on space.
	VFSLowDiskSpaceOtherFS = "com.apple.system.lowdiskspace.user"
	// VFSLowDiskSpaceRootFS is kNotifyVFSLowDiskSpaceRootFS,
	// "com.apple.system.lowdiskspace.system": the root volume is low on space.
	VFSLowDiskSpaceRootFS = "com.apple.system.lowdiskspace.system"
	// VFSMount is kNotifyVFSMount, "com.apple.system.kernel.mount": a volume was mounted.
	VFSMount = "com.apple.system.kernel.mount"
	// VFSUnmount is kNotifyVFSUnmount, "com.apple.system.kernel.unmount": a volume was
	// unmounted.
	VFSUnmount = "com.apple.system.kernel.unmount"
	// VFSUpdate is kNotifyVFSUpdate, "com.apple.system.kernel.mountupdate": a mounted volume's
	// flags changed.
	VFSUpdate = "com.apple.system.kernel.mountupdate"
)
