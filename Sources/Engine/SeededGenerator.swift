import Foundation

/// xoshiro256** seeded through splitmix64. The whole state is four words, so a search can
/// checkpoint its generator and continue with exactly the numbers it would have drawn.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Hashable, Codable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        var x = seed
        var words = [UInt64]()
        for _ in 0..<4 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            words.append(z ^ (z >> 31))
        }
        state = words
    }

    /// Restores a generator from `state` as returned by a previous generator.
    public init?(state: [UInt64]) {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else { return nil }
        self.state = state
    }

    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 24 bits, the resolution of Float.
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Uniform in [0, 1) with 53 bits.
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Uniform in 0..<bound without modulo bias (Lemire's method).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// A uniformly random permutation of 0..<count (Fisher–Yates).
    public mutating func permutation(_ count: Int) -> [Int] {
        var p = Array(0..<count)
        fisherYates(&p)
        return p
    }

    public mutating func fisherYates<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            if i != j { a.swapAt(i, j) }
        }
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension SeededGenerator {
    /// Uniform in [low, high).
    public mutating func nextUniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUnitFloat()
    }

    /// Standard normal by Box–Muller (one value per call, so the state stays four words).
    public mutating func nextStandardNormal() -> Float {
        let u1 = max(nextUnitDouble(), 0x1p-60)
        let u2 = nextUnitDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
