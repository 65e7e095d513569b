#include "base/percent_text.h"

#include <cmath>
#include <cstdio>

namespace cpuledger {

std::string SignedPercent(double fraction, int digits) {
  if (!std::isfinite(fraction)) return "?";
  char text[48];
  std::snprintf(text, sizeof text, "%+.*f%%", digits, 100 * fraction);
  return text;
}

std::string SignedPercentInterval(double estimate, double lo, double hi) {
  return SignedPercent(estimate) + " [" + SignedPercent(lo) + ", " + SignedPercent(hi) + "]";
}

}  // namespace cpuledger
