"""Tests of the GPIO signals: lights, buzzer and gate relay on gpiozero's mock pins."""
