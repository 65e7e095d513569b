// src/base/percent_text.h — relative changes as people read them, one way
// for the alerts, the CLI and the server log.
//
//   SignedPercent(0.031)     -> "+3.1%"
//   SignedPercent(-0.2, 2)   -> "-20.00%"
//   SignedPercent(NAN)       -> "?"
//   SignedPercentInterval(0.031, 0.02, 0.042) -> "+3.1% [+2.0%, +4.2%]"
#pragma once

#include <string>

namespace cpuledger {

// SignedPercent() — a fraction as a percentage with its sign (zero as "+0.0%")
// and `digits` after the point; "?" when it is not finite.
std::string SignedPercent(double fraction, int digits = 1);

// SignedPercentInterval() — an estimate and its interval, as an effect is written.
std::string SignedPercentInterval(double estimate, double lo, double hi);

}  // namespace cpuledger
