"""Airflow-free core of the Code42 Incydr -> SecurityCoach pipeline.

Operators in ``plugins/operators`` are thin shells over the functions here; everything in this
package runs without a scheduler (pytest, scripts, benchmarks).
"""
