/// Rank correlation metrics for comparators.
public enum KendallTau {
    /// CTNAS's measure: for every pair i < j, sign(p_ij − 0.5) · sign(acc_i − acc_j), averaged,
    /// where p_ij = P(i beats j) and sign(0) counts as +1, exactly as the original code.
    public static func pairwise(probabilities p: (Int, Int) -> Float, accuracies: [Float]) -> Double {
        let n = accuracies.count
        guard n > 1 else { return 0 }
        var count = 0
        for i in 0..<(n - 1) {
            for j in (i + 1)..<n {
                let predicted = p(i, j) - 0.5 >= 0 ? 1 : -1
                let actual = accuracies[i] - accuracies[j] >= 0 ? 1 : -1
                count += predicted * actual
            }
        }
        return Double(count) / Double(n * (n - 1) / 2)
    }

    /// Kendall's tau-b between two score lists (ties handled), O(n log n) by merge-sort
    /// inversion counting, so it runs over a whole benchmark table.
    public static func tauB(_ x: [Float], _ y: [Float]) -> Double {
        precondition(x.count == y.count)
        let n = x.count
        guard n > 1 else { return 0 }
        var order = Array(0..<n)
        order.sort { x[$0] != x[$1] ? x[$0] < x[$1] : y[$0] < y[$1] }
        let total = Double(n) * Double(n - 1) / 2
        // Ties in x, and joint ties.
        var tiesX = 0.0, tiesXY = 0.0
        var i = 0
        while i < n {
            var j = i + 1
            while j < n && x[order[j]] == x[order[i]] { j += 1 }
            tiesX += Double(j - i) * Double(j - i - 1) / 2
            var k = i
            while k < j {
                var m = k + 1
                while m < j && y[order[m]] == y[order[k]] { m += 1 }
                tiesXY += Double(m - k) * Double(m - k - 1) / 2
                k = m
            }
            i = j
        }
        var ys = order.map { y[$0] }
        var buffer = ys
        let swaps = Double(mergeCountInversions(&ys, &buffer, 0, n))
        var tiesY = 0.0
        i = 0
        while i < n {
            var j = i + 1
            while j < n && ys[j] == ys[i] { j += 1 }
            tiesY += Double(j - i) * Double(j - i - 1) / 2
            i = j
        }
        let concordantMinusDiscordant = total - tiesX - tiesY + tiesXY - 2 * swaps
        let denominator = ((total - tiesX) * (total - tiesY)).squareRoot()
        return denominator > 0 ? concordantMinusDiscordant / denominator : 0
    }

    private static func mergeCountInversions(_ a: inout [Float], _ buffer: inout [Float], _ low: Int, _ high: Int) -> Int {
        guard high - low > 1 else { return 0 }
        let mid = (low + high) / 2
        var swaps = mergeCountInversions(&a, &buffer, low, mid) + mergeCountInversions(&a, &buffer, mid, high)
        var i = low, j = mid, k = low
        while i < mid && j < high {
            if a[j] < a[i] { buffer[k] = a[j]; swaps += mid - i; j += 1 } else { buffer[k] = a[i]; i += 1 }
            k += 1
        }
        while i < mid { buffer[k] = a[i]; i += 1; k += 1 }
        while j < high { buffer[k] = a[j]; j += 1; k += 1 }
        for t in low..<high { a[t] = buffer[t] }
        return swaps
    }
}
