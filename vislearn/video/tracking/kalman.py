"""Constant-velocity Kalman filter for boxes, batched over tracks.

State (8): centre x, centre y, width, height and their velocities (per frame). Measurement (4):
cx, cy, w, h. Noise is proportional to the box size (as in SORT/DeepSORT/ByteTrack), per axis
(width for x, height for y) because hands and objects in SSv2 change aspect ratio a lot
(a width/height state, as BoT-SORT, follows that better than DeepSORT's aspect/height state).
"""
from __future__ import annotations

import numpy as np

NDIM = 4


class KalmanFilter:
    def __init__(self, std_position: float = 1 / 20, std_velocity: float = 1 / 160,
                 std_measurement: float = 1 / 20):
        self.std_position = std_position
        self.std_velocity = std_velocity
        self.std_measurement = std_measurement
        self.F = np.eye(2 * NDIM)
        self.F[:NDIM, NDIM:] = np.eye(NDIM)  # x += v (one frame)
        self.H = np.eye(NDIM, 2 * NDIM)

    @staticmethod
    def _scale(wh: np.ndarray) -> np.ndarray:
        """[n,2] (w,h) -> [n,4] per-axis scale (w, h, w, h), at least 1 pixel."""
        wh = np.maximum(np.asarray(wh, dtype=np.float64), 1.0)
        return np.concatenate([wh, wh], axis=1)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Measurements [n,4] (cx,cy,w,h) -> mean [n,8], covariance [n,8,8]."""
        z = np.asarray(z, dtype=np.float64).reshape(-1, NDIM)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        s = self._scale(z[:, 2:])
        std = np.concatenate([2 * self.std_position * s, 10 * self.std_velocity * s], axis=1)
        cov = np.einsum("ni,ij->nij", std ** 2, np.eye(2 * NDIM))
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead for every track: mean [n,8], cov [n,8,8]."""
        if len(mean) == 0:
            return mean, cov
        s = self._scale(mean[:, 2:4])
        std = np.concatenate([self.std_position * s, self.std_velocity * s], axis=1)
        q = np.einsum("ni,ij->nij", std ** 2, np.eye(2 * NDIM))
        mean = mean @ self.F.T
        cov = self.F @ cov @ self.F.T + q
        mean[:, 2:4] = np.maximum(mean[:, 2:4], 1.0)
        return mean, cov

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct n tracks with their measurements z [n,4]."""
        if len(mean) == 0:
            return mean, cov
        z = np.asarray(z, dtype=np.float64).reshape(-1, NDIM)
        r_std = self.std_measurement * self._scale(mean[:, 2:4])
        R = np.einsum("ni,ij->nij", r_std ** 2, np.eye(NDIM))
        S = self.H @ cov @ self.H.T + R  # [n,4,4]
        PHt = cov @ self.H.T  # [n,8,4]
        K = np.linalg.solve(S, PHt.transpose(0, 2, 1)).transpose(0, 2, 1)  # [n,8,4] = PHt S^-1 (S symmetric)
        innovation = z - mean @ self.H.T
        mean = mean + np.einsum("nij,nj->ni", K, innovation)
        cov = cov - K @ self.H @ cov
        mean[:, 2:4] = np.maximum(mean[:, 2:4], 1.0)
        return mean, cov
