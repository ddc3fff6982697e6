#include "moebench/obs/host_memory.h"

#include <sys/resource.h>

namespace moebench {

int64_t peak_resident_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace moebench
